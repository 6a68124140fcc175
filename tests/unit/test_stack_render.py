"""Pure parts of the stack: env rendering, Prometheus config, port detection, and Kafka's
logins and ACLs as rendered (broker properties, format arguments, rules, passwords)."""

from __future__ import annotations

import json
import shlex
import socket
import stat
from pathlib import Path

import pytest
import yaml

from connectors.kafka import client_config, security_config
from core.settings import Secret, SettingsError, load_settings
from portal.projector import group_for
from vidflow.pipeline import app_processes, process_environ
from vidflow.stack.acls import BYTEWAX_GROUP, grants, projector_group
from vidflow.stack.cli import render_env, render_principal_env
from vidflow.stack.credentials import (
    CLIENT_PRINCIPALS,
    SERVER_PRINCIPALS,
    credentials_path,
    ensure_credentials,
    stack_login,
)
from vidflow.stack.errors import StackError
from vidflow.stack.kafka import kafka_properties, scram_arguments
from vidflow.stack.minio import PERFORMANCE_FLAGS, MinIO
from vidflow.stack.process import port_in_use
from vidflow.stack.prometheus import Prometheus
from vidflow.stack.service import StackPaths, split_host_port


def test_env_lines_are_shell_quoted() -> None:
    settings = load_settings({"VIDFLOW_POSTGRES_PASSWORD": "it's $ecret"})
    lines = render_env(settings).splitlines()
    assert all(line.startswith("export VIDFLOW_") for line in lines)
    password = next(line for line in lines if "POSTGRES_PASSWORD" in line)
    assert (
        shlex.split(password.removeprefix("export "))[0] == "VIDFLOW_POSTGRES_PASSWORD=it's $ecret"
    )


def test_prometheus_scrapes_every_vidflow_process() -> None:
    config = Prometheus().config(load_settings({"VIDFLOW_METRICS_INGEST_PORT": "29101"}))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}  # type: ignore[index, union-attr]
    assert {"vidflow-ingest", "vidflow-transcode", "vidflow-portal", "minio"} <= set(jobs)
    assert jobs["vidflow-ingest"]["static_configs"] == [{"targets": ["127.0.0.1:29101"]}]


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:19092") == ("127.0.0.1", 19092)
    assert split_host_port(":80") == ("127.0.0.1", 80)


def test_port_in_use() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


# --- Kafka logins and ACLs -------------------------------------------------------------------

PASSWORDS = {name: Secret(f"pw-{name}") for name in (*CLIENT_PRINCIPALS, *SERVER_PRINCIPALS)}


def test_broker_takes_only_scram_logins_and_denies_what_no_acl_allows(tmp_path: Path) -> None:
    settings = load_settings({"VIDFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:29092"})
    props = kafka_properties(settings, tmp_path, PASSWORDS)
    assert props["listeners"] == "BROKER://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["listener.security.protocol.map"] == (
        "BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"].split(";") == ["User:admin", "User:broker", "User:controller"]
    assert "ANONYMOUS" not in "".join(props.values())
    assert (
        'username="broker" password="pw-broker"'
        in props["listener.name.broker.scram-sha-512.sasl.jaas.config"]
    )
    # the controller listener needs a password too (PLAIN: SCRAM users live in its metadata)
    assert props["listener.name.controller.sasl.enabled.mechanisms"] == "PLAIN"
    assert (
        'user_controller="pw-controller"'
        in props["listener.name.controller.plain.sasl.jaas.config"]
    )


def test_plaintext_properties_are_the_old_broker_for_upgrading(tmp_path: Path) -> None:
    props = kafka_properties(load_settings({}), tmp_path, None)
    assert props["listeners"].startswith("PLAINTEXT://127.0.0.1:19092,")
    assert "authorizer.class.name" not in props and "super.users" not in props


def test_format_gives_every_client_principal_and_the_broker_a_scram_user() -> None:
    arguments = scram_arguments(PASSWORDS)
    users = arguments[1::2]
    assert arguments[0::2] == ["--add-scram"] * len(users)
    assert users == [
        f"SCRAM-SHA-512=[name={name},password=pw-{name}]" for name in (*CLIENT_PRINCIPALS, "broker")
    ]


def allowed(principal: str, resource: str = "topic") -> dict[str, set[str]]:
    """What ``principal`` may do, by name."""
    rules = grants(load_settings({}).kafka)
    found: dict[str, set[str]] = {}
    for rule in rules:
        if rule.principal == principal and rule.resource == resource:
            found.setdefault(rule.name, set()).add(rule.operation)
    return found


def test_producer_may_write_uploads_and_nothing_else() -> None:
    assert allowed("producer") == {"vidflow.uploads": {"write"}}
    assert allowed("producer", "group") == {}


def test_watcher_may_write_file_events_only() -> None:
    assert allowed("watcher") == {"vidflow.file-events": {"write"}}
    assert allowed("watcher", "group") == {}


def test_flows_read_their_inputs_and_write_their_outputs() -> None:
    assert allowed("ingest") == {
        "vidflow.file-events": {"read"},
        "vidflow.uploads": {"read"},
        "vidflow.status": {"write"},
        "vidflow.jobs": {"write"},
        "vidflow.dlq": {"write"},
    }
    assert allowed("transcode") == {
        "vidflow.jobs": {"read", "write"},
        "vidflow.status": {"write"},
        "vidflow.dlq": {"write"},
    }
    # Bytewax's source never joins its group but looks it up: Describe, not Read
    assert (
        allowed("ingest", "group") == allowed("transcode", "group") == {BYTEWAX_GROUP: {"describe"}}
    )


def test_portal_reads_status_in_the_projectors_group_and_writes_no_status() -> None:
    settings = load_settings({"VIDFLOW_KAFKA_TOPIC_STATUS": "x.status"})
    portal = allowed("portal")
    assert "write" not in portal["vidflow.status"] | portal["vidflow.dlq"]
    assert "read" not in portal["vidflow.jobs"] | portal["vidflow.uploads"]
    assert projector_group(settings.kafka) == group_for(settings)
    assert allowed("portal", "group")[group_for(load_settings({}))] == {"read"}


def test_only_submit_groups_are_granted_by_prefix() -> None:
    prefixed = [r for r in grants(load_settings({}).kafka) if r.pattern == "prefixed"]
    assert [(r.principal, r.name, r.operation) for r in prefixed] == [
        ("portal", "vidflow-submit-", "describe")
    ]


def test_passwords_are_made_once_and_only_the_owner_can_read_them(tmp_path: Path) -> None:
    made = ensure_credentials(tmp_path)
    path = credentials_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert set(made) == {*CLIENT_PRINCIPALS, *SERVER_PRINCIPALS}
    assert len({value.reveal() for value in made.values()}) == len(made)
    assert all(len(value.reveal()) >= 32 for value in made.values())
    assert ensure_credentials(tmp_path) == made


def test_a_principal_added_later_gets_a_password_and_the_others_keep_theirs(
    tmp_path: Path,
) -> None:
    path = credentials_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"admin": "kept"}))
    made = ensure_credentials(tmp_path)
    assert made["admin"].reveal() == "kept" and made["producer"].reveal() != ""


def test_stack_login_uses_the_stacks_admin_unless_a_login_is_given(tmp_path: Path) -> None:
    plain = load_settings({"VIDFLOW_HOME": str(tmp_path)})
    assert stack_login(plain) is plain  # no stack passwords yet: as it was
    made = ensure_credentials(tmp_path)
    admin = stack_login(plain).kafka
    assert (admin.security_protocol, admin.username) == ("SASL_PLAINTEXT", "admin")
    assert admin.password == made["admin"]
    explicit = load_settings(
        {
            "VIDFLOW_HOME": str(tmp_path),
            "VIDFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "VIDFLOW_KAFKA_USERNAME": "someone",
            "VIDFLOW_KAFKA_PASSWORD": "theirs",
        }
    )
    assert stack_login(explicit) is explicit
    assert stack_login(explicit, "portal", force=True).kafka.username == "portal"


def test_principal_env_holds_only_its_kafka_login(tmp_path: Path) -> None:
    settings = load_settings({"VIDFLOW_HOME": str(tmp_path)})
    with pytest.raises(StackError, match="vidflow stack up"):
        render_principal_env(settings, "producer")
    made = ensure_credentials(tmp_path)
    lines = render_principal_env(settings, "producer").splitlines()
    values = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    assert values == {
        "VIDFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
        "VIDFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "VIDFLOW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "VIDFLOW_KAFKA_USERNAME": "producer",
        "VIDFLOW_KAFKA_PASSWORD": made["producer"].reveal(),
    }
    assert "VIDFLOW_KAFKA_USERNAME=admin" in render_env(settings)


def test_every_app_process_logs_in_as_its_own_principal(tmp_path: Path) -> None:
    settings = load_settings({"VIDFLOW_HOME": str(tmp_path)})
    made = ensure_credentials(tmp_path)
    processes = app_processes(settings, [tmp_path / "watch"])
    logins = {
        p.name: (env["VIDFLOW_KAFKA_USERNAME"], env["VIDFLOW_KAFKA_PASSWORD"])
        for p in processes
        for env in [process_environ(settings, p)]
    }
    assert logins == {
        "ingest": ("ingest", made["ingest"].reveal()),
        "transcode": ("transcode", made["transcode"].reveal()),
        "watcher": ("watcher", made["watcher"].reveal()),
        "projector": ("portal", made["portal"].reveal()),
        "webhooks": ("portal", made["portal"].reveal()),
        "portal": ("portal", made["portal"].reveal()),
    }


def test_client_config_logs_in_only_when_told() -> None:
    assert client_config(load_settings({}).kafka) == {"bootstrap.servers": "127.0.0.1:19092"}
    k = load_settings(
        {
            "VIDFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "VIDFLOW_KAFKA_USERNAME": "ingest",
            "VIDFLOW_KAFKA_PASSWORD": "s3cret",
        }
    ).kafka
    assert security_config(k) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "ingest",
        "sasl.password": "s3cret",
    }
    assert "s3cret" not in repr(k)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"VIDFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "VIDFLOW_KAFKA_USERNAME"),
        ({"VIDFLOW_KAFKA_USERNAME": "ingest"}, "VIDFLOW_KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_a_half_given_kafka_login_is_refused_naming_the_setting(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ)


def test_a_cluster_id_never_reads_as_an_option() -> None:
    """A KRaft cluster id is base64 of 16 random bytes; one in 64 began with ``-``, and the
    storage tool then took it for an option and refused to format (seen in CI)."""
    from vidflow.stack.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(2000)]
    assert all(not i.startswith("-") and len(i) == 22 for i in ids)
    assert len(set(ids)) == len(ids)


def test_the_stack_and_compose_run_minio_with_the_same_flags(tmp_path: Path) -> None:
    """Both deployments run MinIO without MD5 ETags (``--no-compat``): the stack's and compose's
    stores spend the same CPU per byte, so the bench's figures hold for both."""
    launch = MinIO().launch(load_settings({}), StackPaths(tmp_path), {"minio": Path("minio")})
    compose = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "compose.yaml").read_text())
    command = compose["services"]["minio"]["command"].split()
    assert PERFORMANCE_FLAGS == ("--no-compat",)
    for flag in PERFORMANCE_FLAGS:
        assert flag in launch.argv
        assert flag in command
