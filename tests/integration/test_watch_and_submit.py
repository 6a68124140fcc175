"""The producers on real services: the directory watcher and `vidflow submit`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from core import events as ev
from core.ids import upload_video_id
from core.layout import ObjectLayout
from core.settings import MiB, Settings, settings_environ
from tests.flows import ROOT, FlowProcess, TopicReader
from tests.media import h264_clip, raw_clip, write_in_pieces
from watcher.watch import DirectoryWatcher

pytestmark = pytest.mark.integration


@pytest.fixture
def watch_settings(isolated_settings: Settings, tmp_path: Path) -> Settings:
    # the ingest flow honours file events only under its watch roots: the test's directory
    ingest = msgspec.structs.replace(
        isolated_settings.ingest, chunk_size=5 * MiB, stream_timeout=2.0,
        watch_roots=(str(tmp_path),),
    )  # fmt: skip
    return msgspec.structs.replace(isolated_settings, ingest=ingest, home=tmp_path / "home")


def file_events(reader: TopicReader) -> list[ev.AnyEvent]:
    return [e for e in reader.events if isinstance(e, ev.FileChanged | ev.FileDeleted)]


def test_watcher_reports_existing_files_once_and_refuses_escaping_symlinks(
    watch_settings: Settings, tmp_path: Path
) -> None:
    root, outside = tmp_path / "incoming", tmp_path / "outside"
    (root / "cam1").mkdir(parents=True)
    outside.mkdir()
    (root / "cam1" / "a.mp4").write_bytes(b"a" * 100)
    (root / ".hidden.mp4").write_bytes(b"h")
    (root / "b.mp4.part").write_bytes(b"p")
    (outside / "secret.mp4").write_bytes(b"s")
    (root / "escape.mp4").symlink_to(outside / "secret.mp4")

    assert DirectoryWatcher(watch_settings, [root]).scan() == 1
    assert DirectoryWatcher(watch_settings, [root]).scan() == 0  # a restart re-sends nothing

    reader = TopicReader(watch_settings, watch_settings.kafka.topic_file_events)
    reader.wait_for(lambda es: len(es) >= 1, 20)
    reader.poll(1.0)
    reader.close()
    sent = file_events(reader)
    assert [Path(e.path).name for e in sent] == ["a.mp4"]
    assert isinstance(sent[0], ev.FileChanged) and sent[0].size == 100


def test_watcher_follows_writes_and_the_flow_makes_one_source(
    watch_settings: Settings, tmp_path: Path
) -> None:
    root = tmp_path / "drop"
    root.mkdir()
    stop = threading.Event()
    watcher = DirectoryWatcher(watch_settings, [root])
    thread = threading.Thread(target=watcher.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    status = TopicReader(watch_settings, watch_settings.kafka.topic_status)
    flow = FlowProcess("dataflows.ingest_flow", watch_settings, tmp_path / "flow").start()
    try:
        data = raw_clip(tmp_path / "src.mkv", seconds=3).read_bytes()
        target = root / "camera.mkv"
        write_in_pieces(target, data, pieces=4, pause=0.4)
        events = status.wait_for(
            lambda es: any(isinstance(e, ev.IngestCompleted | ev.JobFailed) for e in es), 60, flow
        )
        completed = [e for e in events if isinstance(e, ev.IngestCompleted)]
        assert len(completed) == 1
        assert completed[0].manifest.sha256 == hashlib.sha256(data).hexdigest()
        target.unlink()
        reader = TopicReader(watch_settings, watch_settings.kafka.topic_file_events)
        reader.wait_for(lambda es: any(isinstance(e, ev.FileDeleted) for e in es), 20)
        reader.close()
    finally:
        stop.set()
        thread.join(10)
        flow.stop()
        status.close()


def run_submit(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidflow", "submit", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=180, check=False,
        env={**settings_environ(settings), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )  # fmt: skip


@pytest.fixture
def ingest_flow(watch_settings: Settings, tmp_path: Path) -> Iterator[FlowProcess]:
    with FlowProcess("dataflows.ingest_flow", watch_settings, tmp_path / "flow") as flow:
        yield flow


def test_submit_wait_json_reports_a_failure_with_its_reason(
    watch_settings: Settings, ingest_flow: FlowProcess, tmp_path: Path
) -> None:
    bogus = tmp_path / "holiday.mp4"
    bogus.write_bytes(b"not a video at all\n" * 5000)
    done = run_submit(watch_settings, str(bogus), "--wait", "--json", "--timeout", "90")
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "failed"
    assert "holiday.mp4" in document["error"]
    assert document["source"]["sha256"] == hashlib.sha256(bogus.read_bytes()).hexdigest()
    assert document["renditions"] == []


def test_submit_uploads_and_the_source_is_verified(
    watch_settings: Settings, ingest_flow: FlowProcess, tmp_path: Path
) -> None:
    clip = h264_clip(tmp_path / "clip.mp4")
    done = run_submit(
        watch_settings, str(clip), "--owner", "alice", "--wait", "--json", "--timeout", "10"
    )  # waited out whole (nothing transcodes): long enough for the ingest of a 1 s clip
    document = json.loads(done.stdout)
    # without a transcode flow running the video waits in the queue after a verified ingest
    assert document["status"] == "timeout (queued)", done.stderr
    assert document["source"]["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    # issue 13: the uploaded object is the source (never copied), an upload id's incoming key
    layout = ObjectLayout(watch_settings.storage)
    source_key = document["source"]["key"]
    upload_id = source_key.removeprefix(layout.incoming_prefix()).split("/", 1)[0]
    assert source_key == layout.incoming(upload_id)
    assert upload_video_id(upload_id) == document["video_id"]
    # the owner is what the object carries (the ingest flow ignores the event's owner field)
    status = TopicReader(watch_settings, watch_settings.kafka.topic_status)
    events = status.wait_for(
        lambda es: any(isinstance(e, ev.IngestStarted) for e in es), 20, ingest_flow
    )
    status.close()
    started = [e for e in events if isinstance(e, ev.IngestStarted)]
    assert [(e.video_id, e.owner) for e in started] == [(document["video_id"], "alice")]


@pytest.fixture
def running_watcher(watch_settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """``DirectoryWatcher.run`` on a fresh root in a thread; yields the root."""
    root = tmp_path / "watched"
    root.mkdir()
    stop = threading.Event()
    thread = threading.Thread(
        target=DirectoryWatcher(watch_settings, [root]).run, kwargs={"stop": stop}, daemon=True
    )
    thread.start()
    time.sleep(0.5)  # the watches are in place
    try:
        yield root
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()


def test_a_closed_file_is_announced_and_completes_at_once(
    watch_settings: Settings, running_watcher: Path, tmp_path: Path
) -> None:
    settings = msgspec.structs.replace(
        watch_settings,
        ingest=msgspec.structs.replace(
            watch_settings.ingest, stream_timeout=60.0, close_is_final=True
        ),
    )
    data = raw_clip(tmp_path / "src.mkv", seconds=2).read_bytes()
    status = TopicReader(settings, settings.kafka.topic_status)
    reader = TopicReader(settings, settings.kafka.topic_file_events)
    with FlowProcess("dataflows.ingest_flow", settings, tmp_path / "flow") as flow:
        target = running_watcher / "recorder.mkv"
        write_in_pieces(target, data, pieces=3, pause=0.4)
        closed_at = time.monotonic()
        closed = reader.wait_for(lambda es: any(isinstance(e, ev.FileClosed) for e in es), 20)
        event = next(e for e in closed if isinstance(e, ev.FileClosed))
        assert event.path == str(target) and event.size == len(data)
        status.wait_for(
            lambda es: any(isinstance(e, ev.IngestCompleted | ev.JobFailed) for e in es), 30, flow
        )
        assert time.monotonic() - closed_at < 20  # the close, not the 60 s timeout, completed it
        time.sleep(2.0)  # a late file.changed of the same write would start a second version
        status.poll(1.0)
        flow.assert_running()
    reader.close()
    status.close()
    completed = [e for e in status.events if isinstance(e, ev.IngestCompleted)]
    assert len(completed) == 1
    assert completed[0].manifest.sha256 == hashlib.sha256(data).hexdigest()


def test_a_file_appended_in_separate_opens_is_one_video(
    watch_settings: Settings, running_watcher: Path, tmp_path: Path
) -> None:
    """Issue 11 end to end: four open-append-close calls (a logger, ``cat >>``, a resumed
    transfer) with pauses below the stream timeout are one video, completed; none failed."""
    timeout, grace = 4.0, 0.5
    settings = msgspec.structs.replace(
        watch_settings,
        ingest=msgspec.structs.replace(
            watch_settings.ingest, stream_timeout=timeout, close_grace=grace, close_is_final=True
        ),
    )
    data = h264_clip(tmp_path / "src.mp4", seconds=2).read_bytes()  # the moov at the end
    step = -(-len(data) // 4)
    pieces = [data[start : start + step] for start in range(0, len(data), step)]
    status = TopicReader(settings, settings.kafka.topic_status)
    jobs = TopicReader(settings, settings.kafka.topic_jobs)
    target = running_watcher / "appended.mp4"
    with FlowProcess("dataflows.ingest_flow", settings, tmp_path / "flow") as flow:
        for number, (piece, pause) in enumerate(zip(pieces, (1.0, 2.5, 1.0, 0.0), strict=True)):
            with target.open("ab") as handle:  # one open-append-close call
                handle.write(piece)
            if number == 0:  # the flow is up and reading before the pauses count
                status.wait_for(lambda es: any(isinstance(e, ev.IngestStarted) for e in es), 60)
            time.sleep(pause)
        status.wait_for(
            lambda es: any(isinstance(e, ev.IngestCompleted | ev.JobFailed) for e in es), 30, flow
        )
        jobs.wait_for(lambda es: len(es) >= 1, 20, flow)
        # a late event would start another video (ingest.started at once, the failure only at
        # the timeout): past the grace, its start is what the count of starts below sees
        time.sleep(grace + 1.5)
        status.poll(1.0)
        jobs.poll(1.0)
        flow.assert_running()
    status.close()
    jobs.close()
    started = [e for e in status.events if isinstance(e, ev.IngestStarted)]
    completed = [e for e in status.events if isinstance(e, ev.IngestCompleted)]
    assert len(started) == 1
    assert [e for e in status.events if isinstance(e, ev.JobFailed)] == []
    assert len(completed) == 1
    assert completed[0].manifest.sha256 == hashlib.sha256(data).hexdigest()
    requests = [e for e in jobs.events if isinstance(e, ev.TranscodeRequested)]
    assert len(requests) == 1 and requests[0].video_id == completed[0].video_id


def test_a_directory_moved_into_a_root_has_its_files_reported(
    watch_settings: Settings, running_watcher: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "card-dump"
    (outside / "day1").mkdir(parents=True)
    (outside / "a.mp4").write_bytes(b"a" * 100)
    (outside / "day1" / "b.mp4").write_bytes(b"b" * 200)
    moved = running_watcher / "card-dump"
    outside.rename(moved)
    expected = {str(moved / "a.mp4"): 100, str(moved / "day1" / "b.mp4"): 200}

    reader = TopicReader(watch_settings, watch_settings.kafka.topic_file_events)

    def closed(events: list[ev.AnyEvent]) -> dict[str, int]:
        return {e.path: e.size for e in events if isinstance(e, ev.FileClosed)}

    reader.wait_for(lambda es: closed(es) == expected, 20)
    # a file written later inside the moved directory is watched too
    (moved / "day1" / "c.mp4").write_bytes(b"c" * 300)
    expected[str(moved / "day1" / "c.mp4")] = 300
    reader.wait_for(lambda es: closed(es) == expected, 20)
    reader.close()
