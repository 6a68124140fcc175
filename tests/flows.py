"""Running a dataflow as a real child process (what production does) and reading its output."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx
from bytewax.recovery import init_db_dir
from confluent_kafka import Consumer

from connectors.kafka import make_consumer
from core import events as ev
from core.settings import Settings, settings_environ

ROOT = Path(__file__).resolve().parents[1]
# a test's reader asks the broker to answer a fetch within 50 ms: with the default 500 ms a
# fresh consumer's first fetch waits that long before the first message shows
QUICK_FETCH = {"fetch.wait.max.ms": 50}


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Block until ``url`` answers at all (a server process has started)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.2)


def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Whether ``condition`` holds within ``timeout``, asked every 0.1 s (a wait that ends as
    soon as it holds, where a fixed sleep waits its whole length)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class FlowProcess:
    """``python -m bytewax.run <module>:flow`` with recovery, for one test's isolated settings."""

    def __init__(
        self,
        module: str,
        settings: Settings,
        workdir: Path,
        *,
        workers: int = 1,
        extra_env: dict[str, str] | None = None,
        snapshot_seconds: int = 1,
        process_id: int | None = None,
        addresses: list[str] | None = None,
    ) -> None:
        self.module = module
        self.workdir = workdir
        self.recovery = workdir / "recovery"
        self.log = workdir / f"{module.rsplit('.', 1)[-1]}.log"
        self.workers = workers
        self.process_id = process_id
        self.addresses = addresses
        self.snapshot_seconds = snapshot_seconds
        no_metrics = {"VIDFLOW_METRICS_INGEST_PORT": "0", "VIDFLOW_METRICS_TRANSCODE_PORT": "0"}
        self.env = {**os.environ, **settings_environ(settings), **no_metrics, **(extra_env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> FlowProcess:
        if not self.recovery.exists():
            self.recovery.mkdir(parents=True)
            init_db_dir(self.recovery, 1)  # what `python -m bytewax.recovery DIR 1` does
        argv = [
            sys.executable, "-m", "bytewax.run", f"{self.module}:flow",
            "-w", str(self.workers), "-r", str(self.recovery),
            "-s", str(self.snapshot_seconds), "-b", "0",
        ]  # fmt: skip
        if self.process_id is not None and self.addresses:
            argv += ["-i", str(self.process_id), "-a", ";".join(self.addresses)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def kill(self) -> None:
        """SIGKILL: the flow gets no chance to clean up, as in a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        self.interrupt()
        self.reap()

    def interrupt(self) -> None:
        """SIGINT, without waiting (the first half of :meth:`stop`; see :func:`stop_all`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def reap(self) -> None:
        """Wait for an interrupted flow to exit; SIGKILL it after 10 s."""
        if self.process is None:
            return
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def assert_running(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"flow exited with {self.process.returncode}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def __enter__(self) -> FlowProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def flow_cluster(
    module: str, settings: Settings, workdir: Path, processes: int = 2, **options: object
) -> list[FlowProcess]:
    """One flow as a cluster of ``processes`` on loopback (``-i N -a ...``), not started.

    As Bytewax's recovery docs have it for a cluster, the partitions are made once, together,
    and spread out: process ``i`` keeps ``part-i`` in a recovery directory of its own.
    """
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)]
    made = workdir / "partitions"
    made.mkdir(parents=True)
    init_db_dir(made, processes)
    flows = []
    for i in range(processes):
        flow = FlowProcess(
            module, settings, workdir / f"process-{i}", process_id=i, addresses=addresses,
            **options,  # type: ignore[arg-type]
        )  # fmt: skip
        flow.recovery.mkdir(parents=True)
        (made / f"part-{i}.sqlite3").rename(flow.recovery / f"part-{i}.sqlite3")
        flows.append(flow)
    return flows


def stop_all(flows: list[FlowProcess]) -> None:
    """Stop the processes of a cluster together: one interrupted alone waits for its peers
    (and is killed after :meth:`FlowProcess.stop`'s 10 s), so all are interrupted first."""
    for flow in flows:
        flow.interrupt()
    for flow in flows:
        flow.reap()


class TopicReader:
    """Reads a topic from the beginning and keeps every decoded event."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer: Consumer = make_consumer(
            settings.kafka, f"test-{uuid.uuid4().hex}", **QUICK_FETCH
        )
        self.consumer.subscribe([topic])
        self.events: list[ev.AnyEvent] = []
        self.raw: list[bytes] = []

    def poll(self, seconds: float = 0.5) -> None:
        """Keep what arrives during ``seconds`` (all of them: to see that nothing more comes)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._receive(0.1)

    def _receive(self, timeout: float) -> bool:
        """Keep the next message, if one arrives within ``timeout``; whether one did."""
        message = self.consumer.poll(timeout)
        if message is None or message.error() is not None:
            return False
        self.raw.append(message.value())
        decoded = ev.try_decode(message.value())
        if not isinstance(decoded, ev.DecodeError):
            self.events.append(decoded)
        return True

    def wait_for(
        self,
        predicate: Callable[[list[ev.AnyEvent]], bool],
        timeout: float,
        flow: FlowProcess | None = None,
    ) -> list[ev.AnyEvent]:
        """Read until ``predicate`` holds of the events so far; it is asked again after every
        message (not after a fixed slice of time), so the wait ends as soon as it can, with
        the rest of the burst that satisfied it."""
        deadline = time.monotonic() + timeout
        checked = time.monotonic()
        while not predicate(self.events):
            if time.monotonic() > deadline:
                types = [e.type for e in self.events]
                detail = f"\nflow log:\n{flow.output()}" if flow else ""
                raise AssertionError(f"timed out; events so far: {types}{detail}")
            if flow is not None and time.monotonic() - checked > 0.5:
                flow.assert_running()
                checked = time.monotonic()
            self._receive(0.1)
        while self._receive(0.1):  # what came in the same burst (the events right after)
            pass
        return self.events

    def close(self) -> None:
        self.consumer.close()
