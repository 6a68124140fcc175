"""Apache Kafka of the local stack: its broker configuration (SASL/SCRAM logins, ACLs) and the
service that formats, upgrades, starts and probes it."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path

import msgspec
from confluent_kafka import KafkaException

from connectors.kafka import make_admin, wait_for_kafka
from connectors.retry import ServiceUnavailable
from core.logs import get_logger
from core.settings import Secret, Settings
from vidflow.stack.acls import ensure_scram_users
from vidflow.stack.credentials import (
    ADMIN,
    CLIENT_PRINCIPALS,
    MECHANISM,
    SERVER_PRINCIPALS,
    ensure_credentials,
    load_credentials,
)
from vidflow.stack.errors import StackError
from vidflow.stack.java import check_java
from vidflow.stack.process import running_pid, tail
from vidflow.stack.service import Launch, Service, StackPaths, split_host_port

__all__ = ["Kafka", "kafka_properties", "new_cluster_id", "scram_arguments"]

log = get_logger("vidflow.stack")


def _jaas(module: str, **options: str) -> str:
    """A JAAS line for a listener's login module (values are URL-safe tokens, never quoted)."""
    return f"{module} required " + " ".join(f'{k}="{v}"' for k, v in options.items()) + ";"


SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


def kafka_properties(
    settings: Settings, data: Path, passwords: Mapping[str, Secret] | None
) -> dict[str, str]:
    """The broker's ``server.properties``: with ``passwords``, clients log in with SCRAM on the
    broker listener and the StandardAuthorizer denies whatever no ACL allows; without, the
    plain listener a data directory from before authentication was made with (used only to
    upgrade it)."""
    host, port = split_host_port(settings.kafka.bootstrap.split(",")[0])
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{port + 1}",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": str(data / "log"),
        "num.partitions": str(settings.kafka.partitions),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(8 * 1024 * 1024),
    }
    if passwords is None:
        return properties | {
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{port + 1}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        }
    broker, controller = passwords["broker"].reveal(), passwords["controller"].reveal()
    return properties | {
        "listeners": f"BROKER://{host}:{port},CONTROLLER://{host}:{port + 1}",
        "advertised.listeners": f"BROKER://{host}:{port}",
        "listener.security.protocol.map": "BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "BROKER",
        # clients: SCRAM, users in the metadata log (made by the format step, or after start)
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"listener.name.broker.{MECHANISM.lower()}.sasl.jaas.config": _jaas(
            SCRAM_MODULE, username="broker", password=broker
        ),
        # the controller listener: PLAIN with its one user in this file (SCRAM cannot serve
        # it), so no one reaches the controller's APIs without a password either
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": _jaas(
            PLAIN_MODULE, username="controller", password=controller, user_controller=controller
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": ";".join(f"User:{name}" for name in (ADMIN, *SERVER_PRINCIPALS)),
    }


def new_cluster_id() -> str:
    """A random KRaft cluster id (base64 of 16 bytes) that does not begin with ``-``: the
    storage tool would read such an id as an option and refuse to format (Kafka's own
    ``Uuid.randomUuid`` skips those ids for the same reason)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def scram_arguments(passwords: Mapping[str, Secret]) -> list[str]:
    """``StorageTool format`` arguments giving every client principal and the broker its
    SCRAM credential from the first start (KIP-900)."""
    arguments: list[str] = []
    for name in (*CLIENT_PRINCIPALS, "broker"):
        arguments += [
            "--add-scram",
            f"{MECHANISM}=[name={name},password={passwords[name].reveal()}]",
        ]
    return arguments


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds passwords)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)


class Kafka(Service):
    """Apache Kafka in KRaft mode (combined broker and controller), from Maven Central jars,
    with SASL/SCRAM logins and ACLs (:mod:`vidflow.stack.acls`)."""

    name = "kafka"
    setting = "VIDFLOW_KAFKA_BOOTSTRAP"
    UPGRADE_TIMEOUT = 120.0

    def address(self, settings: Settings) -> str:
        return settings.kafka.bootstrap.split(",")[0]

    def ports(self, settings: Settings) -> list[int]:
        port = split_host_port(self.address(settings))[1]
        return [port, port + 1]  # the KRaft controller listens right above the broker

    @staticmethod
    def users_marker(paths: StackPaths) -> Path:
        """Present once the data directory's metadata holds the SCRAM users."""
        return paths.data("kafka") / "scram-users"

    def config(
        self,
        settings: Settings,
        paths: StackPaths,
        passwords: Mapping[str, Secret] | None,
        file: str = "server.properties",
    ) -> Path:
        """Write the broker's properties (owner-only: they hold passwords) and log setup."""
        data = paths.data(self.name)
        properties = kafka_properties(settings, data, passwords)
        _write_private(data / file, "".join(f"{k}={v}\n" for k, v in properties.items()))
        (data / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, stdout\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=INFO\n"
        )
        return data / file

    def java(self, libs: Path, data: Path, main: str, *args: str) -> list[str]:
        """The command running one of Kafka's Java entry points (broker, storage tool)."""
        java = shutil.which("java")
        if java is None:
            raise StackError("Java not found: run `apt-get install openjdk-17-jre-headless`")
        check_java(java)
        return [
            java,
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{data / 'log4j.properties'}",
            "-cp",
            f"{libs}/*",
            main,
            *args,
        ]

    def prepare(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> None:
        data = paths.data(self.name)
        data.mkdir(parents=True, exist_ok=True)
        passwords = ensure_credentials(paths.home)
        if (data / "log" / "meta.properties").exists():
            if not self.users_marker(paths).exists():
                self._upgrade(settings, paths, tools, passwords)
        else:
            self._format(settings, paths, tools, passwords)
        self.users_marker(paths).write_text("\n".join(CLIENT_PRINCIPALS) + "\n")
        self.config(settings, paths, passwords)

    def _format(
        self,
        settings: Settings,
        paths: StackPaths,
        tools: dict[str, Path],
        passwords: Mapping[str, Secret],
    ) -> None:
        data = paths.data(self.name)
        config = self.config(settings, paths, passwords)
        cluster_id = new_cluster_id()
        argv = self.java(
            tools["kafka"], data, "kafka.tools.StorageTool", "format",
            "-t", cluster_id, "-c", str(config), *scram_arguments(passwords),
        )  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shown = done.stdout + done.stderr
            for password in passwords.values():  # the arguments may be echoed back
                shown = shown.replace(password.reveal(), "***")
            raise StackError(f"formatting Kafka's KRaft storage failed:\n{shown}")

    def _upgrade(
        self,
        settings: Settings,
        paths: StackPaths,
        tools: dict[str, Path],
        passwords: Mapping[str, Secret],
    ) -> None:
        """A data directory from before authentication keeps its topics and messages (Kafka is
        the log of record): the broker runs once more as it was, without logins, just long
        enough to store the SCRAM users, then stops; the next start has SASL and ACLs."""
        data = paths.data(self.name)
        config = self.config(settings, paths, None, file="server-upgrade.properties")
        plain = msgspec.structs.replace(
            settings.kafka, security_protocol="PLAINTEXT", username="", password=Secret("")
        )
        log.info("upgrading", service=self.name, data=str(data), to="SASL/SCRAM")
        with paths.log(self.name).open("a") as out:
            broker = subprocess.Popen(
                self.java(tools["kafka"], data, "kafka.Kafka", str(config)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_kafka(plain, timeout=self.UPGRADE_TIMEOUT)
            users = {name: passwords[name] for name in (*CLIENT_PRINCIPALS, "broker")}
            ensure_scram_users(make_admin(plain), users)
        except (ServiceUnavailable, KafkaException) as exc:
            raise StackError(
                f"upgrading Kafka's data directory {data} to SASL/SCRAM failed ({exc}); "
                f"last lines of {paths.log(self.name)}:\n" + tail(paths.log(self.name))
            ) from None
        finally:
            broker.terminate()
            try:
                broker.wait(60)
            except subprocess.TimeoutExpired:
                broker.kill()
                broker.wait()
            config.unlink(missing_ok=True)

    def launch(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> Launch:
        data = paths.data(self.name)
        config = self.config(settings, paths, ensure_credentials(paths.home))
        return Launch(self.java(tools["kafka"], data, "kafka.Kafka", str(config)))

    def probe(self, settings: Settings) -> None:
        metadata = make_admin(settings.kafka, quiet=True).list_topics(timeout=2.0)
        if not metadata.brokers:
            raise ConnectionError("no broker registered yet")

    def refuse_running_without_logins(self, paths: StackPaths) -> None:
        """A broker started before the stack had logins still runs without them: say how to
        restart it rather than probe it with a login it cannot answer."""
        if running_pid(paths.pidfile(self.name)) is None or self.users_marker(paths).exists():
            return
        raise StackError(
            "Kafka of this stack was started before the stack had SASL/SCRAM logins and ACLs; "
            "restart it once to upgrade it (its topics and messages are kept): "
            "`vidflow stack down && vidflow stack up`"
        )

    def after_start(self, settings: Settings, paths: StackPaths) -> None:
        """Principals added since the data directory was made get their SCRAM users."""
        passwords = load_credentials(paths.home)
        if passwords is None or settings.kafka.security_protocol == "PLAINTEXT":
            return
        users = {name: passwords[name] for name in (*CLIENT_PRINCIPALS, "broker")}
        made = ensure_scram_users(make_admin(settings.kafka), users)
        if made:
            log.info("scram users made", users=made)
