"""The local stack's Kafka principals and their passwords.

Every component logs in as its own principal so the broker's ACLs can hold it to its own topics
(see :mod:`vidflow.stack.acls`). Passwords are random, made on the stack's first start and kept
in one file under ``VIDFLOW_HOME`` that only its owner can read; ``vidflow stack env`` hands
them out and ``vidflow up`` gives each process its own.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import msgspec

from core.settings import KafkaSettings, Secret, Settings

__all__ = [
    "ADMIN",
    "CLIENT_PRINCIPALS",
    "COMPONENTS",
    "MECHANISM",
    "SERVER_PRINCIPALS",
    "as_principal",
    "credentials_path",
    "ensure_credentials",
    "load_credentials",
    "login_environ",
    "stack_login",
]

ADMIN = "admin"
# One principal per component, plus ``producer`` for outside producers (uploads only).
COMPONENTS = ("ingest", "transcode", "portal", "watcher", "producer")
CLIENT_PRINCIPALS = (ADMIN, *COMPONENTS)  # SCRAM users clients log in as
# The broker's own logins: ``broker`` on its SCRAM listener, ``controller`` (PLAIN, from the
# broker's config) on the KRaft controller listener, where SCRAM cannot work: SCRAM users live
# in the metadata log the controller serves.
SERVER_PRINCIPALS = ("broker", "controller")
MECHANISM = "SCRAM-SHA-512"


def credentials_path(home: Path) -> Path:
    """Where the stack keeps its Kafka passwords."""
    return Path(home).resolve() / "secrets" / "kafka-users.json"


def load_credentials(home: Path) -> dict[str, Secret] | None:
    """The stack's passwords by principal, or None for a stack that has none yet."""
    path = credentials_path(home)
    if not path.exists():
        return None
    stored: dict[str, str] = json.loads(path.read_text())
    return {name: Secret(value) for name, value in stored.items()}


def ensure_credentials(home: Path) -> dict[str, Secret]:
    """Load the passwords, making any principal's that is missing (mode 0600, directory 0700).

    Written to a temporary file created 0600 and renamed, so the file is never readable by
    others, not even for a moment, and never half written.
    """
    current = load_credentials(home) or {}
    wanted = (*CLIENT_PRINCIPALS, *SERVER_PRINCIPALS)
    if all(name in current for name in wanted):
        return current
    made = {name: current.get(name) or Secret(secrets.token_urlsafe(24)) for name in wanted}
    path = credentials_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    partial = path.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump({name: value.reveal() for name, value in made.items()}, out, indent=2)
    partial.replace(path)
    return made


def as_principal(kafka: KafkaSettings, principal: str, password: Secret) -> KafkaSettings:
    """``kafka`` logging in as ``principal`` over SASL/SCRAM."""
    return msgspec.structs.replace(
        kafka,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=MECHANISM,
        username=principal,
        password=password,
    )


def stack_login(settings: Settings, principal: str = ADMIN, *, force: bool = False) -> Settings:
    """``settings`` logged in to the local stack's Kafka as ``principal``.

    Unchanged when the stack has no credentials (a broker from before authentication, or not a
    local stack at all), and, unless ``force``, when the settings already name a login: an
    explicit ``VIDFLOW_KAFKA_USERNAME`` is the operator's choice.
    """
    if settings.kafka.username and not force:
        return settings
    stored = load_credentials(Path(settings.home))
    if stored is None or principal not in stored:
        return settings
    kafka = as_principal(settings.kafka, principal, stored[principal])
    return msgspec.structs.replace(settings, kafka=kafka)


def login_environ(kafka: KafkaSettings) -> dict[str, str]:
    """The variables that point a vidflow process (or any client) at Kafka and log it in."""
    values = {"VIDFLOW_KAFKA_BOOTSTRAP": kafka.bootstrap}
    if kafka.security_protocol != "PLAINTEXT":
        values |= {
            "VIDFLOW_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
            "VIDFLOW_KAFKA_SASL_MECHANISM": kafka.sasl_mechanism,
            "VIDFLOW_KAFKA_USERNAME": kafka.username,
            "VIDFLOW_KAFKA_PASSWORD": kafka.password.reveal(),
        }
    return values
