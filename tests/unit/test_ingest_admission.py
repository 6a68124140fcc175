"""Admission of file events, in-process with Bytewax's testing source and sink (issue 9, obs. 1
and 10): refused events leave on the dead-letter branch with a public reason, admitted ones go
on, and a FIFO or a size of 2**63 neither blocks nor slows the step. Run on one and two workers.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import bytewax.operators as op
import msgspec
import pytest
from bytewax.dataflow import Dataflow, Stream
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from connectors.storage import make_client
from core import events as ev
from core.errors import is_public
from core.settings import MiB, Settings
from dataflows.ingest.admission import Admission
from dataflows.kafka_io import Inbound

HOST = "cam-1"


def closed(path: Path | str, size: int, *, stream_id: str = "", inode: int = 0) -> Inbound:
    event = ev.FileClosed(
        id=uuid.uuid4().hex, stream_id=stream_id or f"{HOST}:{path}", host=HOST, path=str(path),
        size=size, mtime=0.0, inode=inode,
    )  # fmt: skip
    return Inbound(event, "vidflow.file-events", 0, 0)


def run_admission(
    settings: Settings, items: list[Inbound], workers: int
) -> tuple[list[Inbound], list[ev.DeadLetter]]:
    """The admission step between a testing source and two testing sinks, as the flow wires it."""
    admission = Admission(settings, make_client(settings.storage), lambda _what, call: call())
    flow = Dataflow("admission-test")
    checked = op.branch(
        "admit",
        op.map("check", op.input("in", flow, TestingSource(items)), admission),
        lambda item: isinstance(item, Inbound),
    )
    oks: Stream[Inbound] = checked.trues  # type: ignore[assignment]
    errs: Stream[ev.DeadLetter] = checked.falses  # type: ignore[assignment]
    admitted: list[Inbound] = []
    refused: list[ev.DeadLetter] = []
    op.output("ok", oks, TestingSink(admitted))
    op.output("dead", errs, TestingSink(refused))
    if workers == 1:
        run_main(flow)  # type: ignore[no-untyped-call]
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)  # type: ignore[no-untyped-call]
    return admitted, refused


@pytest.mark.parametrize("workers", [1, 2])
def test_file_events_beyond_the_grant_are_dead_letters(tmp_path: Path, workers: int) -> None:
    root = tmp_path / "watch"
    root.mkdir()
    settings = Settings(ingest=msgspec.structs.replace(Settings().ingest, watch_roots=(str(root),)))
    good = root / "good.mkv"
    good.write_bytes(b"x" * 1000)
    (root / "escape.mkv").symlink_to("/etc/passwd")
    os.mkfifo(root / "pipe.mkv")
    (root / "dir.mkv").mkdir()
    items = [
        closed("/etc/passwd", 10),
        closed(root / "escape.mkv", 10),
        closed(root / "pipe.mkv", 6 * MiB),
        closed(root / "dir.mkv", 0),
        closed(good, 2**63),
        closed(good, 1001),
        closed(good, 10, stream_id=f"{HOST}:{root}/other.mkv"),
        closed(good, 1000, inode=good.stat().st_ino + 1),
        closed(root / "missing.mkv", 10),
        closed(good, 1000, inode=good.stat().st_ino),
        closed(good, 500),  # a growing file announced earlier: fewer bytes than it has is fine
        closed(f"{root}/nul\x00.mkv", 10),  # the OS refuses such a path: so does admission
    ]
    started = time.monotonic()
    admitted, refused = run_admission(settings, items, workers)
    assert time.monotonic() - started < 10  # nothing blocked
    sizes = sorted(i.event.size for i in admitted if isinstance(i.event, ev.FileClosed))
    assert sizes == [500, 1000]
    assert len(refused) == 10
    assert all(r.stage == "admit" and is_public(r.error) for r in refused)
    errors = " | ".join(sorted(r.error for r in refused))
    for expected in (
        "outside the watched roots", "FIFO", "directory", "over the limit",
        "more than the file has", "stream id", "replaced", "does not exist", "cannot be checked",
    ):  # fmt: skip
        assert expected in errors, errors
    assert all(msgspec.json.decode(r.raw)["type"] == "file.closed" for r in refused)
