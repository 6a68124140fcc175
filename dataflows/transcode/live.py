"""Publishing tracks while they encode, so a video plays within seconds of its job's start.

FFmpeg writes each track as one local MP4 that grows fragment by fragment, and rewrites its
EVENT playlist of byte ranges as each fragment completes (``commands._cmaf_output``). An S3
object cannot be appended to, so while the track encodes each finished fragment is uploaded as a
temporary object of its own (``{track}.live/{n}.m4s``, the init as ``{track}.live/init.mp4``)
and the track's playlist in the bucket is a growing EVENT playlist of those (never closed).
When the track is done the publishing child uploads the one MP4, switches the playlist to byte
ranges into it and deletes the temporaries (``outputs.RenditionStore._publish_track``).

Every request to the store takes CPU from FFmpeg on a small machine (the store's and this
child's), so fragments go up one by one, every ``POLL_SECONDS``, only until the job plays (its
lowest video rung is up: the first playable moment); from then on every ``BATCH_SECONDS`` each
track's new fragments go up as one object (``{track}.live/{n}.m4s`` from its fragment ``n`` on,
the playlist naming each fragment's byte range in it), with one playlist write per track.

This runs in a child beside FFmpeg (the ``encode`` step never calls the store): it polls the
local files, publishes what is new and records, in ``live-tracks.json`` beside them, each track that
has a fragment up and its codec; the step reads that file (local disk) and tells ``collect``,
which lists the track in the master playlist.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from core.layout import ObjectLayout
from core.logs import get_logger
from dataflows.transcode.commands import AUDIO_TRACK, SEGMENT_SECONDS
from dataflows.transcode.hls import AUDIO_CODEC
from dataflows.transcode.outputs import RenditionStore
from dataflows.transcode.packaging import (
    Track,
    live_playlist,
    parse_media_playlist,
    video_codec_from_init,
)

__all__ = ["LIVE_FILE", "LivePublisher", "read_live"]

log = get_logger("vidflow.transcode")

LIVE_FILE = "live-tracks.json"  # track -> {"codec": ..., "at": seconds after the child began}
POLL_SECONDS = 0.1  # a fragment waits at most this long for its upload (first playable)
BATCH_SECONDS = 2.0 * SEGMENT_SECONDS  # once the job plays: new fragments go up this often


def read_live(workdir: Path) -> dict[str, dict[str, float | str]]:
    """What the live publisher of ``workdir`` has up (empty before anything is, or if its file
    is being replaced right now: read again at the next tick)."""
    try:
        data = json.loads((workdir / LIVE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, dict)}


class LivePublisher:
    """Uploads the new fragments of some tracks of one unit's ``workdir`` and their growing
    playlists."""

    def __init__(self, store: RenditionStore, workdir: Path, names: list[str]) -> None:
        self.store, self.workdir, self.names = store, workdir, names
        self.layout: ObjectLayout = store.layout
        self.sent: dict[str, int] = {}  # track -> fragments uploaded (-1: init only)
        # track -> for each fragment uploaded: the first fragment of its object, its offset there
        self.placed: dict[str, list[tuple[int, int]]] = {}
        self.codecs: dict[str, str] = {}
        self.allowed: dict[str, bool] = {}
        self.up: dict[str, dict[str, float | str]] = {}
        self.began = time.monotonic()

    @property
    def playing(self) -> bool:
        """Whether the job plays: its lowest video rung is up (or none of its rungs is ours)."""
        videos = [n for n in self.names if n != AUDIO_TRACK]
        lowest = min(videos, key=lambda n: int(n[:-1]), default="")
        return not lowest or lowest in self.up or not self._ours(lowest)

    def step(self) -> bool:
        """Publish what is new of every track; whether anything was. The lowest video rung goes
        live first (one FFmpeg run writes every rung, and which first fragment completes first
        is a race): it is the cheapest to start on, and a larger rung waits for it, unless it
        cannot go live (an earlier job's track is there)."""
        changed = False
        videos = sorted((n for n in self.names if n != AUDIO_TRACK), key=lambda n: int(n[:-1]))
        lowest = videos[0] if videos else ""
        for name in self.names:
            if name not in (AUDIO_TRACK, lowest) and lowest not in self.up and self._ours(lowest):
                continue
            changed |= self._track(name)
        return changed

    def run(self, stop: Path, cancel: Path, labels: list[int], audio: bool) -> None:
        """Publish until ``stop`` exists (or the parent kills it: it dies with its worker); when
        ``cancel`` does, remove what this job put up of the tracks instead, and end."""
        due = 0.0  # when the tracks are looked at next
        while not stop.exists():
            if cancel.exists():
                removed = self.store.remove_written_by(self.store.job_id, labels, audio)
                log.info("live tracks removed", video=self.store.video_id, removed=len(removed))
                return
            if time.monotonic() >= due:
                changed = self.step()
                due = time.monotonic() + (BATCH_SECONDS if self.playing else 0.0)
                if changed and not self.playing:
                    continue  # the first fragments: look again at once
            time.sleep(POLL_SECONDS)

    def _ours(self, name: str) -> bool:
        """Whether the track may go live: not when an earlier job's playlist is there (a
        reprocess of a video that plays already must not replace its whole playlist with a
        growing one, which a cancel would then remove)."""
        if name not in self.allowed:
            meta = self.store.written_by(self.store.track_keys(name)[1])
            self.allowed[name] = meta in (None, self.store.job_id)
            if not self.allowed[name]:
                log.info("not published live: an earlier job's track is there", track=name,
                         video=self.store.video_id)  # fmt: skip
        return self.allowed[name]

    def _track(self, name: str) -> bool:
        if not self._ours(name):
            return False
        try:
            text = (self.workdir / f"{name}.m3u8").read_text()
        except FileNotFoundError:
            return False
        track = parse_media_playlist(text)
        if track is None or not track.segments:
            return False
        done = self.sent.get(name)
        mp4 = self.workdir / f"{name}.mp4"
        video_id = self.store.video_id
        with mp4.open("rb") as f:
            if done is None:
                init = f.read(track.init_length)
                self.store.put_bytes(
                    self.layout.live_segment(video_id, name, "init.mp4"), init, "video/mp4"
                )
                codec = AUDIO_CODEC if name == AUDIO_TRACK else video_codec_from_init(init)
                self.codecs[name] = codec
                done = 0
            if done >= len(track.segments):
                self.sent[name] = done
                return False
            placed = self.placed.setdefault(name, [])
            # one object per fragment until the job plays, then the new ones together (they
            # follow each other in the MP4)
            runs = [[n] for n in range(done, len(track.segments))]
            if self.playing and name in self.up:
                runs = [list(range(done, len(track.segments)))]
            for run in runs:
                first = track.segments[run[0]]
                f.seek(first.offset)
                body = f.read(sum(track.segments[n].length for n in run))
                key = self.layout.live_segment(video_id, name, f"{run[0]}.m4s")
                self.store.put_bytes(key, body, "video/iso.segment")
                placed += [(run[0], track.segments[n].offset - first.offset) for n in run]
        self.sent[name] = len(track.segments)
        self._playlist(name, track)
        if name not in self.up:  # its first fragment is up: the master may list it
            at = round(time.monotonic() - self.began, 3)
            self.up[name] = {"codec": self.codecs[name], "at": at}
            _write(self.workdir / LIVE_FILE, self.up)
        return True

    def _playlist(self, name: str, track: Track) -> None:
        live = self.layout.live_dir(self.store.video_id, name).rsplit("/", 1)[1]
        placed = self.placed.get(name, [])
        holds = Counter(first for first, _ in placed)  # fragments per object
        text = live_playlist(
            track, f"{live}/init.mp4", lambda n: f"{live}/{placed[n][0]}.m4s",
            lambda n: None if holds[placed[n][0]] == 1 else placed[n][1],
        )  # fmt: skip
        key = self.store.track_keys(name)[1]
        self.store.put_text(key, text, "application/vnd.apple.mpegurl")


def _write(path: Path, data: dict[str, dict[str, float | str]]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data))
    partial.replace(path)
