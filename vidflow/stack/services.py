"""The four local services: how each is prepared, started and asked whether it is healthy."""

from __future__ import annotations

import base64
import functools
import json
import os
import pwd
import re
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
import psycopg
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
from vidflow.stack.process import running_pid, tail

__all__ = [
    "SERVICES",
    "Kafka",
    "Service",
    "StackPaths",
    "kafka_properties",
    "scram_arguments",
    "split_host_port",
]

log = get_logger("vidflow.stack")


def split_host_port(address: str) -> tuple[str, int]:
    """``"host:port"`` -> ``("host", port)``."""
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


MIN_JAVA = 11  # Kafka 3.9's broker and tools


def java_major(version_text: str) -> int | None:
    """The major version in ``java -version`` output (``"1.8.0_392"`` is 8, ``"17.0.9"`` 17)."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


@functools.cache
def check_java(java: str) -> None:
    """Refuse a Java too old for Kafka up front, naming it, instead of a JVM stack trace in the
    broker's log."""
    shown = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    major = java_major(shown.stderr + shown.stdout)
    if major is not None and major < MIN_JAVA:
        raise StackError(
            f"{java} is Java {major}; Kafka needs Java {MIN_JAVA} or newer: "
            "run `apt-get install openjdk-17-jre-headless`"
        )


@dataclass(frozen=True)
class StackPaths:
    """Where a service's data, log and pid file live under the stack home."""

    home: Path

    def data(self, service: str) -> Path:
        return self.home / service

    def log(self, service: str) -> Path:
        return self.home / "logs" / f"{service}.log"

    def pidfile(self, service: str) -> Path:
        return self.home / "run" / f"{service}.pid"


@dataclass(frozen=True)
class Launch:
    """How to start a service process."""

    argv: list[str]
    env: dict[str, str] | None = None
    user: str | None = None


class Service:
    """A local service: subclasses say where it listens, how to prepare, start and probe it."""

    name: str
    setting: str  # the variable that moves it to another port

    def address(self, settings: Settings) -> str:
        raise NotImplementedError

    def ports(self, settings: Settings) -> list[int]:
        """Every port the service listens on (the address's, and any beside it)."""
        return [split_host_port(self.address(settings))[1]]

    def prepare(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> None:
        """One-time initialisation of the data directory (idempotent)."""

    def launch(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> Launch:
        raise NotImplementedError

    def probe(self, settings: Settings) -> None:
        """Raise unless the service answers a real request."""
        raise NotImplementedError

    def after_start(self, settings: Settings, paths: StackPaths) -> None:
        """Work that needs the running service (roles, databases)."""


def _http_ok(url: str) -> None:
    with urllib.request.urlopen(url, timeout=2) as response:
        if response.status != 200:
            raise ConnectionError(f"{url} answered {response.status}")


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
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
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


class MinIO(Service):
    """MinIO object storage built from its Go module."""

    name = "minio"
    setting = "VIDFLOW_STORAGE_ENDPOINT"

    def address(self, settings: Settings) -> str:
        return settings.storage.endpoint

    def ports(self, settings: Settings) -> list[int]:
        port = split_host_port(self.address(settings))[1]
        return [port, port + 1]  # the console listens right above the S3 API

    def launch(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> Launch:
        host, port = split_host_port(self.address(settings))
        data = paths.data(self.name) / "data"
        data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": settings.storage.access_key.reveal(),
            "MINIO_ROOT_PASSWORD": settings.storage.secret_key.reveal(),
            "MINIO_PROMETHEUS_AUTH_TYPE": "public",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "1",
        }
        argv = [
            str(tools["minio"]),
            "server",
            str(data),
            "--quiet",
            "--address",
            f"{host}:{port}",
            "--console-address",
            f"{host}:{port + 1}",
        ]
        return Launch(argv, env=env)

    def probe(self, settings: Settings) -> None:
        _http_ok(f"{settings.storage.url}/minio/health/live")


class Postgres(Service):
    """A PostgreSQL cluster of our own (not the system one), owned by the ``postgres`` user."""

    name = "postgres"
    setting = "VIDFLOW_POSTGRES_PORT"

    def address(self, settings: Settings) -> str:
        return f"{settings.postgres.host}:{settings.postgres.port}"

    @staticmethod
    def _run_as() -> str | None:
        # PostgreSQL refuses to run as root; Debian's package creates the `postgres` user.
        return "postgres" if os.geteuid() == 0 else None

    def _chown(self, path: Path) -> None:
        user = self._run_as()
        if user is None:
            return
        entry = pwd.getpwnam(user)
        for item in [path, *path.rglob("*")]:
            os.chown(item, entry.pw_uid, entry.pw_gid)

    def prepare(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> None:
        root = paths.data(self.name)
        data, sockets = root / "data", root / "run"
        for directory in (root, sockets):
            directory.mkdir(parents=True, exist_ok=True)
        self._chown(root)
        user = self._run_as()
        if user is not None:
            probe = subprocess.run(
                ["runuser", "-u", user, "--", "test", "-w", str(root)], check=False
            )
            if probe.returncode != 0:
                raise StackError(
                    f"the `{user}` user cannot write {root}: make every directory above it "
                    "traversable (chmod o+x) or set VIDFLOW_HOME to a path it can reach"
                )
        if (data / "PG_VERSION").exists():
            return
        argv = [
            str(tools["postgres"] / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-instructions",
        ]
        if user is not None:
            argv = ["runuser", "-u", user, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"initdb failed:\n{done.stdout}{done.stderr}")

    def launch(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> Launch:
        root = paths.data(self.name)
        argv = [
            str(tools["postgres"] / "postgres"),
            "-D",
            str(root / "data"),
            "-p",
            str(settings.postgres.port),
            "-k",
            str(root / "run"),
            "-c",
            f"listen_addresses={settings.postgres.host}",
            "-c",
            "max_connections=400",
            "-c",
            "shared_buffers=256MB",
        ]
        return Launch(argv, user=self._run_as())

    def probe(self, settings: Settings) -> None:
        try:  # the application's own login, over TCP, as every client will connect
            with psycopg.connect(settings.postgres.dsn, connect_timeout=2) as conn:
                conn.execute("select 1")
                return
        except psycopg.OperationalError:
            pass
        # the superuser over the private socket: works before the vidflow role exists
        with psycopg.connect(
            host=str(Path(settings.home).resolve() / self.name / "run"),
            port=settings.postgres.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=2,
        ) as conn:
            conn.execute("select 1")

    def after_start(self, settings: Settings, paths: StackPaths) -> None:
        pg = settings.postgres
        with psycopg.connect(
            host=str(paths.data(self.name).resolve() / "run"),
            port=pg.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        ) as conn:
            exists = conn.execute(
                "select 1 from pg_roles where rolname = %s", (pg.user,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                psycopg.sql.SQL("{} ROLE {} WITH LOGIN CREATEDB PASSWORD {}").format(
                    psycopg.sql.SQL(verb),
                    psycopg.sql.Identifier(pg.user),
                    psycopg.sql.Literal(pg.password.reveal()),
                )
            )
            if not conn.execute(
                "select 1 from pg_database where datname = %s", (pg.database,)
            ).fetchone():
                conn.execute(
                    psycopg.sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        psycopg.sql.Identifier(pg.database), psycopg.sql.Identifier(pg.user)
                    )
                )
        with psycopg.connect(pg.dsn, connect_timeout=5) as conn:
            conn.execute("select 1")


# The alerting rules compose loads too; the stack reads them from the source tree it runs from.
ALERT_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


class Prometheus(Service):
    """Prometheus scraping every vidflow process and MinIO, and evaluating vidflow's alerts."""

    name = "prometheus"
    setting = "VIDFLOW_METRICS_PROMETHEUS_PORT"

    def address(self, settings: Settings) -> str:
        return f"127.0.0.1:{settings.metrics.prometheus_port}"

    def config(self, settings: Settings) -> dict[str, object]:
        """Scrape configuration for the local stack (YAML is a superset of JSON)."""
        m = settings.metrics

        def job(name: str, target: str, path: str = "/metrics") -> dict[str, object]:
            return {
                "job_name": name,
                "metrics_path": path,
                "static_configs": [{"targets": [target]}],
            }

        return {
            "global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
            "rule_files": [str(ALERT_RULES)],
            "scrape_configs": [
                job("prometheus", self.address(settings)),
                job("minio", settings.storage.endpoint, "/minio/v2/metrics/cluster"),
                job("vidflow-ingest", f"127.0.0.1:{m.ingest_port}"),
                job("vidflow-transcode", f"127.0.0.1:{m.transcode_port}"),
                job("vidflow-watcher", f"127.0.0.1:{m.watcher_port}"),
                job("vidflow-projector", f"127.0.0.1:{m.projector_port}"),
                # the portal serves /metrics itself, on the one port it listens on
                job("vidflow-portal", f"127.0.0.1:{settings.portal.port}"),
            ],
        }

    def launch(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> Launch:
        root = paths.data(self.name)
        (root / "data").mkdir(parents=True, exist_ok=True)
        config = root / "prometheus.yml"
        if not ALERT_RULES.is_file():
            raise StackError("Prometheus's alerting rules are missing: run from a checkout")
        config.write_text(json.dumps(self.config(settings), indent=2))
        binary = shutil.which("prometheus")
        if binary is None:
            raise StackError("Prometheus not found: run `apt-get install prometheus`")
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address={self.address(settings)}",
            "--storage.tsdb.retention.time=7d",
            "--web.enable-lifecycle",
        ]
        return Launch(argv)

    def probe(self, settings: Settings) -> None:
        _http_ok(f"http://{self.address(settings)}/-/ready")


SERVICES: tuple[Service, ...] = (Kafka(), MinIO(), Postgres(), Prometheus())
