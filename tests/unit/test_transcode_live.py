"""Issue 12, live side without services: the live publisher puts up each finished fragment whole
and a growing EVENT playlist of them (an in-memory store stands in for the bucket), skips a
track an earlier job holds, and ``collect`` lists a live track in the master only beside video
and starts the previews child warm once the job plays."""

from __future__ import annotations

import subprocess
from pathlib import Path

from connectors.ffmpeg import ffmpeg_binary, probe
from core.events import Rendition
from core.layout import ObjectLayout
from core.settings import StorageSettings
from dataflows.transcode.collect import CollectLogic
from dataflows.transcode.commands import encode_command
from dataflows.transcode.hls import MasterEntry
from dataflows.transcode.ladder import PlannedRendition
from dataflows.transcode.live import LivePublisher, read_live
from dataflows.transcode.messages import JobOpened, UnitLive
from dataflows.transcode.plan import PlanLogic
from tests.cmaf import check_fragment, check_init, parse_media
from tests.media import h264_clip
from tests.unit.test_transcode_logic import context, request

LAYOUT = ObjectLayout(StorageSettings())


class MemoryStore:
    """The part of ``RenditionStore`` the live publisher uses, in memory."""

    def __init__(self, earlier: dict[str, str] | None = None) -> None:
        self.layout, self.video_id, self.job_id = LAYOUT, "v1", "j1"
        self.objects: dict[str, bytes] = {}
        self.earlier = earlier or {}  # key -> job that wrote it before
        self.puts: list[str] = []  # every key written, in order (one request each)

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = body
        self.puts.append(key)

    def put_text(self, key: str, text: str, content_type: str) -> None:
        self.put_bytes(key, text.encode(), content_type)

    def track_keys(self, name: str) -> tuple[str, str]:
        if name == "audio":
            return LAYOUT.audio("v1"), LAYOUT.audio_playlist("v1")
        return LAYOUT.rendition("v1", int(name[:-1])), LAYOUT.hls_playlist("v1", int(name[:-1]))

    def written_by(self, key: str) -> str | None:
        return self.earlier.get(key)


def _encoded(tmp_path: Path) -> Path:
    clip = h264_clip(tmp_path / "c.mp4", seconds=6, size="320x180")
    out = tmp_path / "work"
    out.mkdir()
    rung = PlannedRendition(144, 256, 144, 200, 64, True)
    argv = encode_command(ffmpeg_binary(), str(clip), probe(str(clip)), [rung], out, "ultrafast")
    subprocess.run([a for a in argv if a not in ("-progress", "pipe:1")], check=True)
    return out


def _cut(playlist: str, segments: int) -> str:
    """FFmpeg's playlist as it stood after ``segments`` fragments (no ENDLIST yet)."""
    lines, seen, kept = playlist.splitlines(), 0, []
    for line in lines:
        if line.startswith("#EXTINF") and seen == segments:
            break
        if line.startswith("#EXTINF"):
            seen += 1
        if line != "#EXT-X-ENDLIST":
            kept.append(line)
    return "\n".join(kept) + "\n"


def test_each_finished_fragment_goes_up_whole_with_a_growing_playlist(tmp_path: Path) -> None:
    work = _encoded(tmp_path)
    full = (work / "144p.m3u8").read_text()
    store = MemoryStore()
    live = LivePublisher(store, work, ["144p"])  # type: ignore[arg-type]
    (work / "144p.m3u8").write_text(_cut(full, 1))
    assert live.step() and read_live(work)["144p"]["codec"] == "avc1.42c00c"
    playlist = parse_media(store.objects[LAYOUT.hls_playlist("v1", 144)].decode())
    assert playlist.event and not playlist.ended and playlist.map == ("144p.live/init.mp4", 0, -1)
    assert [s[0] for s in playlist.segments] == ["144p.live/0.m4s"]
    assert not live.step()  # nothing new
    (work / "144p.m3u8").write_text(_cut(full, 3))
    assert live.step()
    playlist = parse_media(store.objects[LAYOUT.hls_playlist("v1", 144)].decode())
    assert [s[0] for s in playlist.segments] == ["144p.live/0.m4s", *["144p.live/1.m4s"] * 2]
    check_init(store.objects[LAYOUT.live_segment("v1", "144p", "init.mp4")])
    for uri, offset, length in playlist.segments:
        body = store.objects[f"{LAYOUT.live_dir('v1', '144p').rsplit('/', 1)[0]}/{uri}"]
        check_fragment(body if length < 0 else body[offset : offset + length])


def test_once_the_job_plays_new_fragments_go_up_in_one_request(tmp_path: Path) -> None:
    """Issue 12: each request to the store takes CPU from FFmpeg (the store's and the
    publisher's), and a fragment of each track every two seconds, with its playlist, made
    hundreds of them per minute of video. Until the job plays each fragment goes up at once
    (first playable); then a track's new fragments go up as one object, byte ranges in it."""
    work = _encoded(tmp_path)
    full = (work / "144p.m3u8").read_text()
    store = MemoryStore()
    live = LivePublisher(store, work, ["144p"])  # type: ignore[arg-type]
    (work / "144p.m3u8").write_text(_cut(full, 1))
    assert not live.playing
    assert live.step() and live.playing  # its lowest rung is up
    store.puts.clear()
    (work / "144p.m3u8").write_text(_cut(full, 3))
    assert live.step()
    fragments = [k for k in store.puts if k.endswith(".m4s")]
    assert fragments == [LAYOUT.live_segment("v1", "144p", "1.m4s")]
    assert store.puts.count(LAYOUT.hls_playlist("v1", 144)) == 1
    playlist = parse_media(store.objects[LAYOUT.hls_playlist("v1", 144)].decode())
    (_, _, whole), (_, at1, len1), (_, at2, len2) = playlist.segments
    assert whole == -1 and at1 == 0 and at2 == len1
    body = store.objects[fragments[0]]
    assert len(body) == len1 + len2
    check_fragment(body[:len1])
    check_fragment(body[len1:])


def test_a_track_an_earlier_job_holds_is_not_published_live(tmp_path: Path) -> None:
    work = _encoded(tmp_path)
    store = MemoryStore({LAYOUT.hls_playlist("v1", 144): "j0"})
    live = LivePublisher(store, work, ["144p"])  # type: ignore[arg-type]
    assert not live.step() and store.objects == {} and read_live(work) == {}


def test_collect_lists_a_live_track_in_the_master_only_beside_a_video_one(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    planned, _ = PlanLogic(ctx, None).on_item(request())
    opened = next(item for item in planned if isinstance(item, JobOpened))
    logic = CollectLogic(ctx, None)
    logic._on_item(opened)  # the step's own handling, without the writer child it would start
    audio = MasterEntry(0, 0, 0, 64_000, "mp4a.40.2", "audio.m3u8", kind="audio", live=True)
    video = MasterEntry(144, 256, 144, 214_000, "avc1.42c00c", "144p.m3u8", live=True)
    logic._on_item(UnitLive(opened.plan, "ladder", {0: audio}))
    assert not logic.state.master_dirty  # a master of the audio alone would play nothing
    logic._on_item(UnitLive(opened.plan, "ladder", {144: video}))
    assert logic.state.master_dirty and logic.state.entries == {0: audio, 144: video}


def test_the_previews_child_waits_warm_once_the_job_plays(tmp_path: Path) -> None:
    """Issue 12: the previews child is the last hop to job.completed; started only when every
    unit had landed, its start-up (Python and its imports) was on that path. It starts once the
    job plays (not before: the first fragment needs the CPU) and is handed its spec when the
    units are in: the same process does the work."""
    ctx = context(tmp_path)
    planned, _ = PlanLogic(ctx, None).on_item(request())
    opened = next(item for item in planned if isinstance(item, JobOpened))
    logic = CollectLogic(ctx, None)
    logic._on_item(opened)
    audio = MasterEntry(0, 0, 0, 64_000, "mp4a.40.2", "audio.m3u8", kind="audio", live=True)
    logic._on_item(UnitLive(opened.plan, "ladder", {0: audio}))
    logic._previews_tick()
    assert logic.previews.warm is None  # nothing plays yet
    video = MasterEntry(144, 256, 144, 214_000, "avc1.42c00c", "144p.m3u8", live=True)
    logic._on_item(UnitLive(opened.plan, "ladder", {144: video}))
    logic._previews_tick()
    warm = logic.previews.warm
    try:
        assert warm is not None and warm.child.exit_code() is None and not warm.submitted
        logic._previews_tick()
        assert logic.previews.warm is warm  # one per job
        logic.state.previewing = True  # every unit landed
        logic.state.renditions = {
            144: Rendition(height=144, width=256, key="renditions/v1/144p.mp4",
                           hls="renditions/v1/144p.m3u8"),
        }  # fmt: skip
        logic._previews_tick()
        assert logic.previews.task is warm and warm.submitted
        assert warm.spec_path.is_file()
    finally:
        logic.previews.cancel()
    assert warm.child.exit_code() is not None
