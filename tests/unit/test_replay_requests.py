"""Building reprocess requests (``core.jobs``); reading ``--since`` (``vidflow.replay``)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
import pytest

from core import events as ev
from core.jobs import NoVerifiedSource, UnknownProfile, reprocess_request
from core.settings import Settings
from vidflow.replay.selections import parse_since

PROBE = {"duration": 2.0, "width": 426, "height": 240}


def request(
    settings: Settings,
    stamp: float = 1.0,
    probe: dict[str, float] | None = PROBE,
    profile: str = "",
) -> ev.TranscodeRequested:
    return reprocess_request(
        settings, video_id="v1", source_key="sources/v1/source", size=10, sha256="ab" * 32,
        probe=probe, profile=profile, stamp=stamp,
    )  # fmt: skip


def test_a_reprocess_is_a_new_job_per_moment_and_the_same_request_per_moment() -> None:
    settings = Settings()
    first = request(settings, 1.0)
    again = request(settings, 1.0)
    later = request(settings, 2.0)
    assert first == again  # sent twice, one job: the transcode flow drops the duplicate
    assert later.job_id != first.job_id and later.id != first.id
    assert first.job_id != ev.event_id("job", "v1", "ingest")  # never ingest's own job
    assert (first.reason, first.profile) == ("reprocess", settings.transcode.default_profile)
    assert first.source.key == "sources/v1/source" and first.probe.height == 240


def test_a_video_without_a_source_or_an_unknown_profile_is_refused() -> None:
    settings = Settings()
    with pytest.raises(NoVerifiedSource):
        request(settings, probe=None)
    with pytest.raises(UnknownProfile):
        request(settings, profile="nope")


def test_since_reads_relative_and_iso_times() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    assert parse_since("2h", now) == datetime(2026, 11, 30, 10, 0, tzinfo=UTC).timestamp()
    assert parse_since("1d", now) == datetime(2026, 11, 29, 12, 0, tzinfo=UTC).timestamp()
    assert parse_since("2026-11-30T08:00") == datetime(2026, 11, 30, 8, tzinfo=UTC).timestamp()
    with pytest.raises(click.BadParameter):
        parse_since("yesterday")
