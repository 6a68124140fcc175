"""The portal under load: many live browsers plus page requests while status events flow.

A portal and a projector run as real processes on isolated topics and their own database. The
bench opens ``--clients`` server-sent-event streams on ``/events`` (plain sockets: a browser's
EventSource costs the portal the same and the bench far less than an HTTP library would),
requests pages and API listings at ``--page-rate`` per second (open loop), and produces one
``unit.progress`` event per video at ``--rate`` per second. Prints one JSON line per figure:
page latency p50/p99, and the delay from producing a status event to Kafka to each client
receiving the row it caused (p50/p99/max), with the targets beside them.

Needs the local stack (``vidflow stack up``). Usage: ``python bench/portal.py [--clients 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.kafka import flush_or_raise, make_producer, produce_event
from core import events as ev
from core.settings import Settings, load_settings, settings_environ
from portal.auth.accounts import create_user, issue_token
from portal.migrate import upgrade
from tests.flows import ROOT, free_port, wait_http
from tests.isolation import isolated_copy, remove_isolated
from vidflow.stack import ensure_up

EVENT_LINE = re.compile(rb"event: ?video-([0-9a-f]{32})")


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "portal", "figure": figure, "value": round(value, 3), "unit": unit, **extra}
    print(json.dumps(line), flush=True)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


@contextmanager
def own_database(settings: Settings) -> Iterator[Settings]:
    """``settings`` with a fresh, migrated database, dropped afterwards."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(settings.postgres.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    mine = msgspec.structs.replace(
        settings, postgres=msgspec.structs.replace(settings.postgres, database=name)
    )
    try:
        upgrade(mine)
        yield mine
    finally:
        with psycopg.connect(settings.postgres.dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Client:
    """One live browser: an open ``/events`` stream and when each video's row arrived."""

    def __init__(self) -> None:
        self.received: dict[str, float] = {}
        self.ready = asyncio.Event()

    async def run(self, port: int, token: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        await writer.drain()
        tail = b""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            assert b" 200 " in head.split(b"\r\n")[0], head
            self.ready.set()
            while chunk := await reader.read(65536):
                now = time.monotonic()
                data = tail + chunk
                for match in EVENT_LINE.finditer(data):
                    self.received.setdefault(match.group(1).decode(), now)
                tail = data[-64:]
        finally:
            writer.close()


def born(settings: Settings, videos: list[str]) -> None:
    """Every video exists before the clients connect, so each event is a row update."""
    producer = make_producer(settings.kafka)
    for video_id in videos:
        run = f"ingest:{video_id}"
        produce_event(producer, settings.kafka.topic_status, ev.IngestStarted(
            id=f"{run}:1", video_id=video_id, run=run, seq=1, origin="upload",
            filename=f"bench {video_id[:6]}.mp4", owner="bench",
        ))  # fmt: skip
    flush_or_raise(producer)


async def pages(
    base: str, token: str, videos: list[str], rate: float, stop: asyncio.Event
) -> list[float]:
    """Open loop: a page request every 1/``rate`` s (the videos page, a video page, the API
    listing in turn) whether or not earlier ones have answered, like independent people."""
    latencies: list[float] = []
    paths = ["/", "/api/videos", *(f"/videos/{v}" for v in videos[:20])]
    headers = {"authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=30, limits=limits
    ) as client:

        async def one(path: str) -> None:
            started = time.perf_counter()
            response = await client.get(path)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()

        requests: list[asyncio.Task[None]] = []
        started = time.monotonic()
        while not stop.is_set():
            requests.append(asyncio.create_task(one(paths[len(requests) % len(paths)])))
            await asyncio.sleep(max(0.0, started + len(requests) / rate - time.monotonic()))
        await asyncio.gather(*requests)
    return latencies


async def measure(
    settings: Settings, port: int, token: str, videos: list[str], args: argparse.Namespace
) -> None:
    clients = [Client() for _ in range(args.clients)]
    streams = [asyncio.create_task(c.run(port, token)) for c in clients]
    await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 60)
    await asyncio.sleep(1.0)
    stop = asyncio.Event()
    base = f"http://127.0.0.1:{port}"
    loader = asyncio.create_task(pages(base, token, videos, args.page_rate, stop))
    producer = make_producer(settings.kafka, **{"linger.ms": 0})
    sent: dict[str, float] = {}

    def send(video_id: str) -> None:
        job = f"job-{video_id}"
        event = ev.UnitProgress(
            id=f"{job}:1", video_id=video_id, run=job, seq=1, job_id=job, unit="ladder",
            percent=50.0,
        )  # fmt: skip
        sent[video_id] = time.monotonic()
        produce_event(producer, settings.kafka.topic_status, event)
        flush_or_raise(producer)

    interval = 1.0 / args.rate
    started = time.monotonic()
    for i, video_id in enumerate(videos):
        await asyncio.sleep(max(0.0, started + i * interval - time.monotonic()))
        await asyncio.to_thread(send, video_id)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(len(c.received) < len(videos) for c in clients):
        await asyncio.sleep(0.2)
    stop.set()
    latencies = await loader
    for stream in streams:
        stream.cancel()
    await asyncio.gather(*streams, return_exceptions=True)

    delays = [c.received[v] - sent[v] for c in clients for v in videos if v in c.received]
    missing = len(clients) * len(videos) - len(delays)
    common = {"clients": args.clients, "events": len(videos), "events_per_s": args.rate,
              "pages_per_s": args.page_rate}  # fmt: skip
    emit("page_latency_p50_ms", percentile(latencies, 0.5) * 1000, "ms",
         requests=len(latencies), **common)  # fmt: skip
    emit("page_latency_p99_ms", percentile(latencies, 0.99) * 1000, "ms", target="< 100",
         **common)  # fmt: skip
    emit("event_to_browser_p50_ms", percentile(delays, 0.5) * 1000, "ms", **common)
    emit("event_to_browser_p99_ms", percentile(delays, 0.99) * 1000, "ms", target="< 250",
         **common)  # fmt: skip
    emit("event_to_browser_max_ms", max(delays) * 1000, "ms", missing=missing, **common)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="status events per second")
    parser.add_argument("--page-rate", type=float, default=20.0, help="page requests per second")
    args = parser.parse_args()
    base = load_settings()
    ensure_up(base)
    isolated = isolated_copy(base, prefix="bench")
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as scratch, own_database(isolated) as settings:
            settings = msgspec.structs.replace(settings, home=Path(scratch) / "home")
            create_user(settings, "bench", "bench-password", "admin")
            token = issue_token(settings, "bench", "bench")
            videos = [uuid.uuid4().hex for _ in range(args.events)]
            born(settings, videos)
            env = {
                **os.environ, **settings_environ(settings),
                "VIDFLOW_METRICS_PROJECTOR_PORT": "0", "VIDFLOW_LOG_LEVEL": "WARNING",
            }  # fmt: skip
            for argv in (["project"], ["serve", "--port", str(port)]):
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "vidflow", "portal", *argv], cwd=ROOT, env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                ))  # fmt: skip
            wait_http(f"http://127.0.0.1:{port}/healthz")
            headers = {"authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 60
            while httpx.get(f"http://127.0.0.1:{port}/api/videos", headers=headers).json()[
                "total"
            ] < len(videos):
                assert time.monotonic() < deadline, "the projector did not catch up"
                time.sleep(0.5)
            asyncio.run(measure(settings, port, token, videos, args))
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        remove_isolated(isolated)


if __name__ == "__main__":
    main()
