"""The transcode dataflow on real Kafka, MinIO and FFmpeg, run as a child process.

Requests are produced here for clips uploaded here (the ingest flow has its own tests). Clips are
tiny and the test profile small, to keep two shared cores free.
"""

from __future__ import annotations

import hashlib
import io
import json
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from connectors.ffmpeg import ffprobe_binary, probe
from connectors.kafka import flush_or_raise, make_producer, produce_event
from connectors.storage import make_client
from tests.flows import FlowProcess, TopicReader, flow_cluster
from tests.media import h264_clip
from vidflow import events as ev
from vidflow.layout import ObjectLayout
from vidflow.settings import Settings

pytestmark = pytest.mark.integration

PROFILES = json.dumps(
    {"test": [{"height": 240, "video_kbps": 500}, {"height": 144, "video_kbps": 200}]}
)
TERMINAL = (ev.JobCompleted, ev.JobFailed, ev.JobCancelled)


@pytest.fixture
def tc_settings(isolated_settings: Settings, tmp_path: Path) -> Settings:
    transcode = msgspec.structs.replace(
        isolated_settings.transcode, profiles_json=PROFILES, preset="ultrafast",
        retry_backoff=0.5, stall_timeout=4.0, poll_interval=0.2,
    )  # fmt: skip
    return msgspec.structs.replace(isolated_settings, transcode=transcode, home=tmp_path / "home")


@pytest.fixture
def flow(tc_settings: Settings, tmp_path: Path) -> Iterator[FlowProcess]:
    with FlowProcess("dataflows.transcode_flow", tc_settings, tmp_path / "flow") as running:
        yield running


@pytest.fixture
def status(tc_settings: Settings) -> Iterator[TopicReader]:
    reader = TopicReader(tc_settings, tc_settings.kafka.topic_status)
    yield reader
    reader.close()


def request_for(
    settings: Settings, clip: Path, profile: str = "test", known: ev.Probe | None = None
) -> ev.TranscodeRequested:
    """Upload ``clip`` as a video's source and produce its transcode request.

    ``known`` stands in for the probe of a source ffprobe cannot read (a corrupt file that got
    past ingest must still fail cleanly in transcode).
    """
    video_id = uuid.uuid4().hex
    data = clip.read_bytes()
    key = ObjectLayout(settings.storage).source(video_id)
    client = make_client(settings.storage)
    client.put_object(settings.storage.bucket, key, io.BytesIO(data), len(data))
    source = ev.SourceRef(
        bucket=settings.storage.bucket, key=key, size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )  # fmt: skip
    request = ev.TranscodeRequested(
        id=uuid.uuid4().hex, video_id=video_id, job_id=f"job-{video_id}", source=source,
        probe=known or probe(str(clip)), profile=profile,
    )  # fmt: skip
    producer = make_producer(settings.kafka)
    produce_event(producer, settings.kafka.topic_jobs, request)
    flush_or_raise(producer)
    return request


def finished(video_id: str):
    def check(events: list[ev.AnyEvent]) -> bool:
        return any(isinstance(e, TERMINAL) and e.video_id == video_id for e in events)

    return check


def of(events: list[ev.AnyEvent], video_id: str) -> list[ev.AnyEvent]:
    return [e for e in events if getattr(e, "video_id", None) == video_id]


def ffprobe_url(settings: Settings, key: str) -> dict[str, object]:
    client = make_client(settings.storage)
    url = client.presigned_get_object(settings.storage.bucket, key)
    done = subprocess.run(
        [ffprobe_binary(), "-v", "error", "-show_streams", "-show_format", "-of", "json", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    report: dict[str, object] = json.loads(done.stdout)
    return report


def assert_master_complete(settings: Settings, master_key: str) -> list[str]:
    client = make_client(settings.storage)
    bucket = settings.storage.bucket
    text = client.get_object(bucket, master_key).read().decode()
    assert text.startswith("#EXTM3U")
    base = master_key.rsplit("/", 1)[0]
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    infos = [line for line in text.splitlines() if line.startswith("#EXT-X-STREAM-INF")]
    assert len(uris) == len(infos) >= 1
    for info in infos:
        assert "BANDWIDTH=" in info and "RESOLUTION=" in info and 'CODECS="avc1.' in info
    for uri in uris:
        media = client.get_object(bucket, f"{base}/{uri}").read().decode()
        segments = [s for s in media.splitlines() if s and not s.startswith("#")]
        assert segments and "#EXT-X-ENDLIST" in media
        folder = f"{base}/{uri}".rsplit("/", 1)[0]
        for segment in segments:
            client.stat_object(bucket, f"{folder}/{segment}")
    return uris


def test_landscape_clip_gets_its_ladder_hls_and_previews(
    tc_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    clip = h264_clip(tmp_path / "land.mp4", seconds=2, size="480x270")
    request = request_for(tc_settings, clip)
    status.wait_for(finished(request.video_id), 120, flow)
    events = of(status.events, request.video_id)
    done = next(e for e in events if isinstance(e, ev.JobCompleted))
    assert [(r.width, r.height) for r in done.renditions] == [(426, 240), (256, 144)]
    for rendition in done.renditions:
        report = ffprobe_url(tc_settings, rendition.key)
        video = next(s for s in report["streams"] if s["codec_type"] == "video")  # type: ignore[attr-defined, index]
        audio = [s for s in report["streams"] if s["codec_type"] == "audio"]  # type: ignore[attr-defined, index]
        assert video["codec_name"] == "h264"
        assert (video["width"], video["height"]) == (rendition.width, rendition.height)
        assert audio and audio[0]["codec_name"] == "aac"
        assert float(report["format"]["duration"]) == pytest.approx(2.0, abs=0.1)  # type: ignore[index]
    assert assert_master_complete(tc_settings, done.master) == [
        "240p/index.m3u8",
        "144p/index.m3u8",
    ]
    client = make_client(tc_settings.storage)
    for key in (done.poster, done.sprite, done.sprite_vtt):
        assert client.stat_object(tc_settings.storage.bucket, key).size > 0
    progress = [e for e in events if isinstance(e, ev.UnitProgress)]
    assert progress and progress[-1].percent == 100.0


def test_portrait_odd_and_silent_sources(
    tc_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    portrait = request_for(tc_settings, h264_clip(tmp_path / "p.mp4", seconds=1, size="270x480"))
    odd = request_for(
        tc_settings, h264_clip(tmp_path / "o.mp4", seconds=1, size="333x251", audio=False)
    )
    tiny = request_for(tc_settings, h264_clip(tmp_path / "t.mp4", seconds=1, size="160x120"))
    for request in (portrait, odd, tiny):
        status.wait_for(finished(request.video_id), 120, flow)

    def sizes(request: ev.TranscodeRequested) -> list[tuple[int, int]]:
        done = next(
            e for e in of(status.events, request.video_id) if isinstance(e, ev.JobCompleted)
        )
        return [(r.width, r.height) for r in done.renditions]

    assert sizes(portrait) == [(240, 426), (144, 256)]
    assert sizes(odd) == [(318, 240), (192, 144)]
    assert sizes(tiny) == [(160, 120)]  # below the lowest rung: its own size
    odd_done = next(e for e in of(status.events, odd.video_id) if isinstance(e, ev.JobCompleted))
    report = ffprobe_url(tc_settings, odd_done.renditions[0].key)
    assert not [s for s in report["streams"] if s["codec_type"] == "audio"]  # type: ignore[attr-defined, index]


def test_corrupt_source_fails_at_once_with_a_reason(
    tc_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    request = request_for(tc_settings, corrupt, known=ev.Probe(duration=2, width=320, height=240))
    status.wait_for(finished(request.video_id), 60, flow)
    events = of(status.events, request.video_id)
    failed = next(e for e in events if isinstance(e, ev.JobFailed))
    assert "failed after 1 attempt" in failed.reason
    assert len([e for e in events if isinstance(e, ev.UnitStarted)]) == 1  # no retries burnt
    dlq = TopicReader(tc_settings, tc_settings.kafka.topic_dlq)
    letters = dlq.wait_for(lambda es: len(es) >= 1, 20)
    dlq.close()
    assert isinstance(letters[0], ev.DeadLetter) and ev.decode(letters[0].raw) == request


def test_cancel_stops_the_encode_quickly(
    tc_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    request = request_for(tc_settings, h264_clip(tmp_path / "long.mp4", seconds=40, size="480x270"))
    status.wait_for(
        lambda es: any(
            isinstance(e, ev.UnitProgress) and e.video_id == request.video_id for e in es
        ),
        60,
        flow,
    )
    producer = make_producer(tc_settings.kafka)
    produce_event(
        producer,
        tc_settings.kafka.topic_jobs,
        ev.TranscodeCancel(id=uuid.uuid4().hex, video_id=request.video_id),
    )
    flush_or_raise(producer)
    asked = time.monotonic()
    status.wait_for(
        lambda es: any(
            isinstance(e, ev.JobCancelled) and e.video_id == request.video_id for e in es
        ),
        30,
        flow,
    )
    assert time.monotonic() - asked < 5
    running = subprocess.run(
        ["pgrep", "-f", request.video_id], capture_output=True, text=True, check=False
    )
    assert running.stdout.strip() == ""  # no FFmpeg left for this video


def test_stalled_encode_is_killed_and_retried(
    tc_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    request = request_for(
        tc_settings, h264_clip(tmp_path / "stall.mp4", seconds=20, size="480x270")
    )
    status.wait_for(
        lambda es: any(
            isinstance(e, ev.UnitProgress) and e.video_id == request.video_id for e in es
        ),
        60,
        flow,
    )
    pids = subprocess.run(
        ["pgrep", "-f", f"ffmpeg.*{request.video_id}"], capture_output=True, text=True, check=False
    )
    pid = int(pids.stdout.split()[0])
    subprocess.run(["kill", f"-{signal.SIGSTOP.value}", str(pid)], check=True)
    status.wait_for(finished(request.video_id), 180, flow)
    events = of(status.events, request.video_id)
    failed = [e for e in events if isinstance(e, ev.RenditionFailed)]
    assert failed and "stalled" in failed[0].error and not failed[0].final
    assert any(isinstance(e, ev.UnitStarted) and e.attempt == 2 for e in events)
    assert any(isinstance(e, ev.JobCompleted) for e in events)


def test_sigkill_during_an_encode_and_resume(
    tc_settings: Settings, status: TopicReader, tmp_path: Path
) -> None:
    process = FlowProcess("dataflows.transcode_flow", tc_settings, tmp_path / "flow").start()
    try:
        request = request_for(
            tc_settings, h264_clip(tmp_path / "k.mp4", seconds=15, size="480x270")
        )
        status.wait_for(
            lambda es: any(
                isinstance(e, ev.UnitProgress) and e.video_id == request.video_id for e in es
            ),
            60,
            process,
        )
        time.sleep(1.5)
        process.kill()
        time.sleep(0.5)
        orphans = subprocess.run(
            ["pgrep", "-f", f"ffmpeg.*{request.video_id}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert orphans.stdout.strip() == ""  # children die with their worker
        process.start()
        status.wait_for(finished(request.video_id), 180, process)
    finally:
        process.stop()
    events = of(status.events, request.video_id)
    completed = {e.id for e in events if isinstance(e, ev.JobCompleted)}
    assert len(completed) == 1
    per_rung: dict[int, set[str]] = {}
    for e in events:
        if isinstance(e, ev.RenditionCompleted):
            per_rung.setdefault(e.rendition.height, set()).add(e.id)
    assert per_rung and all(len(ids) == 1 for ids in per_rung.values())  # no rendition twice


def test_one_second_clip(
    tc_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    clip = h264_clip(tmp_path / "one.mp4", seconds=1, size="320x240")
    source_duration = probe(str(clip)).duration
    request = request_for(tc_settings, clip)
    status.wait_for(finished(request.video_id), 120, flow)
    done = next(e for e in of(status.events, request.video_id) if isinstance(e, ev.JobCompleted))
    assert [(r.width, r.height) for r in done.renditions] == [(320, 240), (192, 144)]
    for rendition in done.renditions:
        report = ffprobe_url(tc_settings, rendition.key)
        video = next(s for s in report["streams"] if s["codec_type"] == "video")  # type: ignore[attr-defined, index]
        assert video["codec_name"] == "h264"
        assert (video["width"], video["height"]) == (rendition.width, rendition.height)
        duration = float(report["format"]["duration"])  # type: ignore[index]
        assert duration == pytest.approx(source_duration, abs=0.1)
    assert len(assert_master_complete(tc_settings, done.master)) == 2


def _encode_snapshot_epoch(recovery: Path) -> int:
    """The latest epoch at which the encode step's state was snapshotted."""
    epochs = []
    for part in recovery.glob("part-*.sqlite3"):
        with closing(sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=5)) as db:
            row = db.execute(
                "SELECT MAX(snap_epoch) FROM snaps WHERE step_id LIKE '%encode%'"
            ).fetchone()
            epochs.append(int(row[0] or 0))
    return max(epochs, default=0)


def _running(video_id: str) -> bool:
    found = subprocess.run(
        ["pgrep", "-f", f"ffmpeg.*{video_id}"], capture_output=True, text=True, check=False
    )
    return bool(found.stdout.strip())


def test_short_job_finishes_while_a_long_encode_runs_on_the_same_worker(
    tc_settings: Settings, status: TopicReader, tmp_path: Path
) -> None:
    two_slots = msgspec.structs.replace(tc_settings.transcode, max_encodes_per_worker=2)
    settings = msgspec.structs.replace(tc_settings, transcode=two_slots)
    long_clip = h264_clip(tmp_path / "long.mp4", seconds=90, size="640x360")
    with FlowProcess("dataflows.transcode_flow", settings, tmp_path / "flow") as flow:
        long = request_for(settings, long_clip)
        status.wait_for(
            lambda es: any(isinstance(e, ev.UnitProgress) and e.video_id == long.video_id
                           for e in es), 60, flow,
        )  # fmt: skip
        epoch_before = _encode_snapshot_epoch(flow.recovery)
        short = request_for(settings, h264_clip(tmp_path / "short.mp4", seconds=1))
        status.wait_for(finished(short.video_id), 60, flow)
        assert _running(long.video_id), "the long encode should still be running"
        assert not any(isinstance(e, TERMINAL) for e in of(status.events, long.video_id))
        assert any(isinstance(e, ev.JobCompleted) for e in of(status.events, short.video_id))
        assert _encode_snapshot_epoch(flow.recovery) > epoch_before  # snapshots went on
        producer = make_producer(settings.kafka)  # done: spare the shared cores the rest
        produce_event(
            producer, settings.kafka.topic_jobs,
            ev.TranscodeCancel(id=uuid.uuid4().hex, video_id=long.video_id),
        )  # fmt: skip
        flush_or_raise(producer)
        status.wait_for(finished(long.video_id), 30, flow)


def test_two_process_cluster_encodes_one_video_on_both_processes(
    tc_settings: Settings, status: TopicReader, tmp_path: Path
) -> None:
    processes = flow_cluster("dataflows.transcode_flow", tc_settings, tmp_path / "cluster")
    for process in processes:
        process.start()
    try:
        request = request_for(tc_settings, h264_clip(tmp_path / "c.mp4", seconds=2, size="480x270"))
        status.wait_for(finished(request.video_id), 180, processes[0])
    finally:
        for process in processes:
            process.stop()
    events = of(status.events, request.video_id)
    done = next(e for e in events if isinstance(e, ev.JobCompleted))
    assert sorted(r.height for r in done.renditions) == [144, 240]
    assert assert_master_complete(tc_settings, done.master) == [
        "240p/index.m3u8",
        "144p/index.m3u8",
    ]
    started = [e for e in events if isinstance(e, ev.UnitStarted)]
    assert sorted(e.unit for e in started) == ["144p", "240p"]  # auto: one rung per unit
    assert len({e.run for e in started}) == 2  # each unit its own run
    for process in processes:  # each process encoded one of the video's units
        lines = [line for line in process.log.read_text().splitlines() if "unit started" in line]
        assert any(request.video_id in line for line in lines), process.output()
