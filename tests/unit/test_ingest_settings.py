"""The ingest flow's trust settings: watched roots, the size bound, the producers' owner."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import SettingsError, load_settings, settings_environ


def test_watch_roots_default_to_the_local_runs_watch_directory() -> None:
    settings = load_settings({"VIDFLOW_HOME": "/srv/vidflow"})
    assert settings.ingest.roots(settings.home) == (Path("/srv/vidflow/watch"),)
    assert settings.ingest.max_file_bytes == 1024**4
    assert settings.ingest.producer_owner == "producer"


def test_watch_roots_come_from_the_environment_and_survive_a_hand_over() -> None:
    settings = load_settings({"VIDFLOW_INGEST_WATCH_ROOTS": "/rec/cam1, /rec/cam2"})
    assert settings.ingest.roots(settings.home) == (Path("/rec/cam1"), Path("/rec/cam2"))
    handed = load_settings(settings_environ(settings))
    assert handed.ingest == settings.ingest


def test_a_size_bound_that_admits_nothing_is_refused() -> None:
    with pytest.raises(SettingsError, match="MAX_FILE_BYTES"):
        load_settings({"VIDFLOW_INGEST_MAX_FILE_BYTES": "0"})
