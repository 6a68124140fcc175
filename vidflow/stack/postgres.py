"""PostgreSQL of the local stack: a cluster of its own, its role and database."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import psycopg

from core.settings import Settings
from vidflow.stack.errors import StackError
from vidflow.stack.service import Launch, Service, StackPaths

__all__ = ["Postgres"]


SETUP_LOCK = 0x76696466  # pg_advisory_lock key of the role and database set-up ("vidf")


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
            # several processes bring the stack up at once (a test run's workers): one at a
            # time looks for the role and database and makes them, or two both make them
            conn.execute("select pg_advisory_lock(%s)", (SETUP_LOCK,))
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
