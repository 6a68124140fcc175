"""Settings: env parsing, validation with the variable named, production refusing defaults."""

from __future__ import annotations

import pytest

from vidflow.settings import MiB, SettingsError, load_settings


def test_defaults_run_the_local_stack() -> None:
    settings = load_settings({})
    assert settings.kafka.bootstrap == "127.0.0.1:19092"
    assert settings.ingest.chunk_size == 10 * MiB
    assert settings.ingest.stream_timeout == 30.0
    assert settings.postgres.url.startswith("postgresql+psycopg://vidflow:")


def test_env_overrides_are_typed() -> None:
    settings = load_settings(
        {
            "VIDFLOW_KAFKA_PARTITIONS": "6",
            "VIDFLOW_INGEST_STREAM_TIMEOUT": "2.5",
            "VIDFLOW_INGEST_CLOSE_IS_FINAL": "false",
            "VIDFLOW_INGEST_IGNORE_PATTERNS": ".*, *.tmp",
            "VIDFLOW_HOME": "/tmp/vf",
        }
    )
    assert settings.kafka.partitions == 6
    assert settings.ingest.stream_timeout == 2.5
    assert settings.ingest.close_is_final is False
    assert settings.ingest.ignore_patterns == (".*", "*.tmp")
    assert str(settings.home) == "/tmp/vf"


def test_invalid_value_names_the_field() -> None:
    with pytest.raises(SettingsError, match=r"kafka\.partitions"):
        load_settings({"VIDFLOW_KAFKA_PARTITIONS": "many"})


def test_chunk_size_below_compose_minimum_is_refused() -> None:
    with pytest.raises(SettingsError, match="5 MiB compose minimum"):
        load_settings({"VIDFLOW_INGEST_CHUNK_SIZE": str(4 * MiB)})
    with pytest.raises(SettingsError, match="at least 1"):
        load_settings({"VIDFLOW_TRANSCODE_EARLY_ENCODES_PER_WORKER": "0"})
    with pytest.raises(SettingsError, match="niceness from 0 to 19"):
        load_settings({"VIDFLOW_TRANSCODE_BULK_NICE": "25"})


def test_secrets_are_masked() -> None:
    settings = load_settings({"VIDFLOW_STORAGE_SECRET_KEY": "hunter2hunter2"})
    assert "hunter2" not in repr(settings)
    assert settings.storage.secret_key.reveal() == "hunter2hunter2"


def test_production_refuses_default_credentials() -> None:
    with pytest.raises(SettingsError, match="VIDFLOW_POSTGRES_PASSWORD"):
        load_settings({"VIDFLOW_ENV": "production"})


def test_production_accepts_real_credentials() -> None:
    settings = load_settings(
        {
            "VIDFLOW_ENV": "production",
            "VIDFLOW_STORAGE_ACCESS_KEY": "prod-access",
            "VIDFLOW_STORAGE_SECRET_KEY": "prod-secret-key",
            "VIDFLOW_POSTGRES_PASSWORD": "prod-db-password",
            "VIDFLOW_PORTAL_SECRET_KEY": "x" * 48,
            "VIDFLOW_PORTAL_ADMIN_PASSWORD": "a-strong-admin-password",
        }
    )
    assert settings.env == "production"
