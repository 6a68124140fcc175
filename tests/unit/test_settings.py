"""Settings: env parsing, validation with the variable named, production refusing defaults."""

from __future__ import annotations

import json
import logging
import pickle
import re
from pathlib import Path

import msgspec
import pytest
from psycopg.conninfo import conninfo_to_dict

from core.logs import configure_logging, get_logger
from core.settings import MiB, Secret, SettingsError, load_settings, settings_environ


def test_defaults_run_the_local_stack() -> None:
    settings = load_settings({})
    assert settings.kafka.bootstrap == "127.0.0.1:19092"
    assert settings.ingest.chunk_size == 10 * MiB
    assert settings.ingest.stream_timeout == 30.0
    assert settings.postgres.url.drivername == "postgresql+psycopg"
    assert settings.postgres.url.username == "vidflow"


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


# ---------------------------------------------------------------- secrets never show their value

SECRET_ENV = {
    "VIDFLOW_STORAGE_ACCESS_KEY": "access-AKIA-value",
    "VIDFLOW_STORAGE_SECRET_KEY": "hunter2hunter2",
    "VIDFLOW_POSTGRES_PASSWORD": "pg-p@ss/w%rd",
    "VIDFLOW_PORTAL_SECRET_KEY": "portal-session-key-" + "k" * 32,
    "VIDFLOW_PORTAL_ADMIN_PASSWORD": "admin-horse-battery",
}


def _leaks(text: str) -> list[str]:
    return [value for value in SECRET_ENV.values() if value in text]


def test_a_secret_is_masked_by_str_repr_format_and_f_strings() -> None:
    secret = load_settings(SECRET_ENV).storage.secret_key
    shown = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!s}",
        f"{secret!r}",
        f"{secret:>40}",
        "{}".format(secret),  # noqa: UP032 (str.format, not an f-string, is what is tested)
        "%s" % secret,  # noqa: UP031 (printf-style formatting is what is tested)
        format(secret, ""),
    ]
    assert not [text for text in shown if "hunter2" in text]
    assert all("*" in text for text in shown)
    assert secret.reveal() == "hunter2hunter2"


def test_a_secret_is_not_a_string() -> None:
    """A str subclass hands its value to anything that takes a str (joins, concatenation,
    libraries): only ``reveal()`` may."""
    secret = load_settings(SECRET_ENV).storage.secret_key
    assert not isinstance(secret, str)
    with pytest.raises(TypeError):
        "".join([secret])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _ = "key=" + secret  # type: ignore[operator]


def test_printed_settings_never_contain_a_secret() -> None:
    settings = load_settings(SECRET_ENV)
    assert _leaks(repr(settings)) == []
    assert _leaks(str(settings)) == []
    assert _leaks(f"{settings}") == []
    assert _leaks(str(settings.postgres.url)) == []
    assert _leaks(repr(settings.postgres.url)) == []


def test_settings_encoded_by_msgspec_never_contain_a_secret() -> None:
    settings = load_settings(SECRET_ENV)
    # the default encoder refuses a secret rather than guess; an encoder told to print does mask
    with pytest.raises(TypeError):
        msgspec.json.encode(settings)
    assert _leaks(msgspec.json.encode(settings, enc_hook=str).decode()) == []
    assert _leaks(json.dumps(msgspec.to_builtins(settings, enc_hook=str))) == []


def test_logged_settings_never_contain_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(SECRET_ENV)
    for fmt in ("json", "console"):
        configure_logging("INFO", fmt)
        get_logger("test").info("settings", settings=settings, key=settings.storage.secret_key)
        logging.getLogger("test.stdlib").warning("settings %s", settings)
    captured = capsys.readouterr()
    assert "settings" in captured.err
    assert _leaks(captured.err + captured.out) == []


def test_secrets_compare_by_value_and_reveal_only_on_request() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"  # a secret is never equal to the plain text
    assert hash(Secret("a")) == hash(Secret("a"))
    assert load_settings(SECRET_ENV).postgres.password.reveal() == "pg-p@ss/w%rd"


def test_a_secret_survives_pickling_for_child_processes() -> None:
    settings = load_settings(SECRET_ENV)
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_child_environment_carries_the_real_values() -> None:
    environ = settings_environ(load_settings(SECRET_ENV))
    assert {key: environ[key] for key in SECRET_ENV} == SECRET_ENV
    assert load_settings(environ) == load_settings(SECRET_ENV)


def test_the_database_url_and_dsn_carry_any_password() -> None:
    pg = load_settings({**SECRET_ENV, "VIDFLOW_POSTGRES_PASSWORD": "pg p@ss/w%rd 'x'"}).postgres
    assert (pg.url.password, pg.url.host, pg.url.port) == ("pg p@ss/w%rd 'x'", "127.0.0.1", 15432)
    assert conninfo_to_dict(pg.dsn)["password"] == "pg p@ss/w%rd 'x'"  # quoted for libpq


def test_production_refuses_each_default_credential_by_name() -> None:
    for name in SECRET_ENV:
        env = {**SECRET_ENV, "VIDFLOW_ENV": "production"}
        del env[name]
        with pytest.raises(SettingsError, match=name):
            load_settings(env)
    assert load_settings({**SECRET_ENV, "VIDFLOW_ENV": "production"}).env == "production"


# ---------------------------------------------------------------- profiles parsed once, at load


def test_profiles_are_parsed_at_load_and_reachable_from_settings() -> None:
    settings = load_settings(
        {"VIDFLOW_TRANSCODE_PROFILES_JSON": '{"small": [{"height": 240, "video_kbps": 300},'
                                            ' {"height": 360, "video_kbps": 800}]}'}
    )  # fmt: skip
    profiles = settings.transcode.profiles
    assert next(iter(profiles)) == "default" and list(profiles)[-1] == "small"
    assert [rung.height for rung in profiles["small"].rungs] == [360, 240]
    assert settings.transcode.profiles is profiles  # parsed once, not on every call


def test_invalid_profiles_json_is_refused_at_load_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="VIDFLOW_TRANSCODE_PROFILES_JSON"):
        load_settings({"VIDFLOW_TRANSCODE_PROFILES_JSON": "{not json"})
    with pytest.raises(SettingsError, match=r"VIDFLOW_TRANSCODE_PROFILES_JSON.*'empty'"):
        load_settings({"VIDFLOW_TRANSCODE_PROFILES_JSON": '{"empty": []}'})
    with pytest.raises(SettingsError, match="VIDFLOW_TRANSCODE_PROFILES_JSON"):
        load_settings({"VIDFLOW_TRANSCODE_PROFILES_JSON": '{"bad": [{"height": "tall"}]}'})


def test_every_variable_the_readme_documents_is_one_settings_reads() -> None:
    """A documented name that no setting reads is a knob that silently does nothing."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## The event contract")]
    documented: set[str] = set()
    for row in table.splitlines():
        names = re.findall(r"`(VIDFLOW_[A-Z_]+|_[A-Z_]+)`", row.split("|")[1] if "|" in row else "")
        if names and names[0].startswith("VIDFLOW_"):
            group = "_".join(names[0].split("_")[:2]) + "_"  # VIDFLOW_<GROUP>_ for `_FIELD`
            documented |= {n if n.startswith("VIDFLOW_") else group + n[1:] for n in names}
    assert "VIDFLOW_PORTAL_ADMIN_PASSWORD" in documented  # the shorthand rows are read
    assert sorted(documented - set(settings_environ(load_settings({})))) == []


def _credential_variables() -> list[str]:
    """Every ``Secret`` setting with a published default, found by looking at the groups."""
    found = []
    defaults = load_settings({})
    for top in msgspec.structs.fields(defaults):
        group = getattr(defaults, top.name)
        if isinstance(group, msgspec.Struct):
            for field in msgspec.structs.fields(group):
                value = getattr(group, field.name)
                if isinstance(value, Secret) and value.reveal():
                    found.append(f"VIDFLOW_{top.name}_{field.name}".upper())
    return found


def test_production_refuses_any_credential_left_at_its_default() -> None:
    """A credential added to any group (a Kafka password) is covered without another list."""
    names = _credential_variables()
    assert set(SECRET_ENV) <= set(names)
    real = {name: f"real-{name.lower()}-0123456789abcdef" for name in names}
    for name in names:
        env = {**real, "VIDFLOW_ENV": "production"}
        del env[name]
        with pytest.raises(SettingsError, match=name):
            load_settings(env)
    assert load_settings({**real, "VIDFLOW_ENV": "production"}).env == "production"
