"""Format conversion by profile through the real transcode flow (issue 12): each codec profile's
output probes with the asked codec, size and container (real Kafka, MinIO and FFmpeg).

Clips are 1 s at 160x90 so HEVC and AV1 stay quick on two shared cores; one flow run takes every
profile's job.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from connectors.ffmpeg import ffmpeg_binary
from connectors.storage import make_client
from core import events as ev
from core.layout import ObjectLayout
from core.settings import Settings, settings_environ
from dataflows.transcode.outputs import JOB_METADATA
from dataflows.transcode.tasks import CleanupResult, CleanupSpec
from dataflows.transcode.tasks import main as tasks_main
from tests.flows import ROOT, FlowProcess, TopicReader
from tests.integration.test_transcode_flow import ffprobe_url, finished, of, request_for
from tests.media import h264_clip

pytestmark = pytest.mark.integration

WEBM_90 = {"kind": "single", "video_codec": "vp9", "container": "webm", "audio_codec": "opus"}
CUSTOM = {"webm-90": {**WEBM_90, "height": 90, "description": "WebM at 90p"}}

# profile -> (video codec, (width, height), audio codec, ffprobe's format name, extension)
EXPECTED: dict[str, tuple[str | None, tuple[int, int] | None, str, str, str]] = {
    "mp4-h264": ("h264", (160, 90), "aac", "mov,mp4,m4a,3gp,3g2,mj2", "mp4"),
    "mp4-hevc": ("hevc", (160, 90), "aac", "mov,mp4,m4a,3gp,3g2,mj2", "mp4"),
    "mp4-av1": ("av1", (160, 90), "aac", "mov,mp4,m4a,3gp,3g2,mj2", "mp4"),
    "webm-vp9": ("vp9", (160, 90), "opus", "matroska,webm", "webm"),
    "webm-90": ("vp9", (160, 90), "opus", "matroska,webm", "webm"),  # from 320x180: scaled
    "audio-mp3": (None, None, "mp3", "mp3", "mp3"),
    "audio-aac": (None, None, "aac", "mov,mp4,m4a,3gp,3g2,mj2", "m4a"),
    "audio-opus": (None, None, "opus", "ogg", "ogg"),
}


@pytest.fixture
def fmt_settings(isolated_settings: Settings, tmp_path: Path) -> Settings:
    transcode = msgspec.structs.replace(
        isolated_settings.transcode, profiles_json=json.dumps(CUSTOM), preset="ultrafast",
        poll_interval=0.2,
    )  # fmt: skip
    return msgspec.structs.replace(isolated_settings, transcode=transcode, home=tmp_path / "home")


@pytest.fixture
def flow(fmt_settings: Settings, tmp_path: Path) -> Iterator[FlowProcess]:
    with FlowProcess("dataflows.transcode_flow", fmt_settings, tmp_path / "flow") as running:
        yield running


@pytest.fixture
def status(fmt_settings: Settings) -> Iterator[TopicReader]:
    reader = TopicReader(fmt_settings, fmt_settings.kafka.topic_status)
    yield reader
    reader.close()


def avi_clip(path: Path, size: str) -> Path:
    """A 1 s AVI (MPEG-4 Part 2 + MP3), what "convert AVI to MP4" starts from."""
    subprocess.run(
        [
            ffmpeg_binary(), "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "1",
            "-c:v", "mpeg4", "-c:a", "libmp3lame", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def test_each_codec_profile_makes_one_output_with_the_asked_codec_size_and_container(
    fmt_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    small = avi_clip(tmp_path / "small.avi", "160x90")
    large = h264_clip(tmp_path / "large.mp4", seconds=1, size="320x180")
    requests = {
        name: request_for(fmt_settings, large if name == "webm-90" else small, profile=name)
        for name in EXPECTED
    }
    for request in requests.values():
        status.wait_for(finished(request.video_id), 300, flow)
    layout = ObjectLayout(fmt_settings.storage)
    for name, request in requests.items():
        codec, size, audio, container, extension = EXPECTED[name]
        events = of(status.events, request.video_id)
        done = next((e for e in events if isinstance(e, ev.JobCompleted)), None)
        assert done is not None, (name, events)
        assert done.master == "" and done.warnings == [], name  # no ladder, so no HLS
        [output] = done.renditions
        assert output.key == layout.converted(request.video_id, name, extension)
        assert output.hls == ""
        report = ffprobe_url(fmt_settings, output.key)
        streams: list[dict[str, object]] = report["streams"]  # type: ignore[assignment]
        assert report["format"]["format_name"] == container, name  # type: ignore[index]
        videos = [s for s in streams if s["codec_type"] == "video"]
        sounds = [s for s in streams if s["codec_type"] == "audio"]
        assert [s["codec_name"] for s in sounds] == [audio], name
        if codec is None:
            assert videos == [], name
            assert (output.width, output.height) == (0, 0)
            assert (done.poster, done.sprite) == ("", "")  # no picture to preview
            continue
        [video] = videos
        assert video["codec_name"] == codec, name
        assert (video["width"], video["height"]) == size == (output.width, output.height), name
        if codec == "hevc":
            assert video["codec_tag_string"] == "hvc1"  # what Apple players and MSE take
        assert done.poster == layout.poster(request.video_id), name  # a video gets previews
        assert done.sprite == layout.sprite(request.video_id), name


def test_a_hevc_ladder_is_encoded_with_hevc(
    fmt_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    clip = h264_clip(tmp_path / "clip.mp4", seconds=1, size="160x90")
    request = request_for(fmt_settings, clip, profile="hevc-ladder")
    status.wait_for(finished(request.video_id), 180, flow)
    done = next(e for e in of(status.events, request.video_id) if isinstance(e, ev.JobCompleted))
    assert done.master and [(r.width, r.height) for r in done.renditions] == [(160, 90)]
    report = ffprobe_url(fmt_settings, done.renditions[0].key)
    streams: list[dict[str, object]] = report["streams"]  # type: ignore[assignment]
    assert [s["codec_name"] for s in streams] == ["hevc"]  # CMAF: the audio is its own track
    layout = ObjectLayout(fmt_settings.storage)
    audio = ffprobe_url(fmt_settings, layout.audio(request.video_id))
    assert [s["codec_name"] for s in audio["streams"]] == ["aac"]  # type: ignore[index,union-attr]
    # the master names the rung by its real codec, or players skip it
    client = make_client(fmt_settings.storage)
    master = client.get_object(fmt_settings.storage.bucket, done.master).read().decode()
    assert 'CODECS="hvc1.1.6.L' in master and "avc1" not in master


def test_an_audio_profile_for_a_silent_source_fails_with_a_public_reason(
    fmt_settings: Settings, flow: FlowProcess, status: TopicReader, tmp_path: Path
) -> None:
    clip = h264_clip(tmp_path / "mute.mp4", seconds=1, size="160x90", audio=False)
    request = request_for(fmt_settings, clip, profile="audio-opus")
    status.wait_for(finished(request.video_id), 120, flow)
    failed = [e for e in of(status.events, request.video_id) if isinstance(e, ev.JobFailed)]
    assert len(failed) == 1 and "no audio" in failed[0].reason


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vidflow", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
        env={**settings_environ(settings), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )  # fmt: skip


def test_submit_takes_a_conversion_profile_and_lists_them(
    fmt_settings: Settings, flow: FlowProcess, tmp_path: Path
) -> None:
    listed = run_cli(fmt_settings, "profiles")
    assert listed.returncode == 0, listed.stderr
    assert "webm-vp9: One WebM, VP9 + Opus" in listed.stdout
    assert "webm-90: WebM at 90p" in listed.stdout  # a configured one, with its description
    clip = h264_clip(tmp_path / "clip.mp4", seconds=1, size="160x90")
    bogus = run_cli(fmt_settings, "submit", str(clip), "--profile", "nope")
    assert bogus.returncode == 2 and "unknown profile 'nope'" in bogus.stderr
    assert "audio-mp3" in bogus.stderr  # the known ones are named
    ingest_dir = tmp_path / "ingest"
    with FlowProcess("dataflows.ingest_flow", fmt_settings, ingest_dir):
        done = run_cli(
            fmt_settings, "submit", str(clip), "--profile", "audio-mp3", "--wait", "--json",
            "--timeout", "240",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "completed", document
    keys = [r["key"] for r in document["renditions"]]
    assert keys == [f"renditions/{document['video_id']}/audio-mp3.mp3"]


def test_a_cancelled_conversion_removes_only_its_own_output(
    fmt_settings: Settings, tmp_path: Path
) -> None:
    """The clean-up child of a conversion unit cancelled while publishing removes the output its
    job wrote, and leaves one an earlier job wrote (keys are per video and profile)."""
    client = make_client(fmt_settings.storage)
    bucket, layout = fmt_settings.storage.bucket, ObjectLayout(fmt_settings.storage)
    mine, earlier = (
        layout.converted("vid", "webm-vp9", "webm"),
        layout.converted("vid", "audio-mp3", "mp3"),
    )
    for key, job in ((mine, "job-cancelled"), (earlier, "job-earlier")):
        client.put_object(bucket, key, io.BytesIO(b"x"), 1, metadata={JOB_METADATA: job})
    for profile in ("webm-vp9", "audio-mp3"):
        spec = CleanupSpec(video_id="vid", job_id="job-cancelled", bucket=bucket, labels=[90],
                           profile=profile)  # fmt: skip
        spec_path, result_path = tmp_path / f"{profile}.spec", tmp_path / f"{profile}.result"
        spec_path.write_bytes(msgspec.json.encode(spec))
        assert tasks_main([str(spec_path), str(result_path)]) == 0
    left = [o.object_name for o in client.list_objects(bucket, "renditions/vid/", recursive=True)]
    assert left == [earlier]
    result = msgspec.json.decode(result_path.read_bytes(), type=CleanupResult)
    assert result.removed == []  # the earlier job's output is not the cancelled job's
