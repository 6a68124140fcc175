"""Work around an encode that runs in a child process, so no worker waits for it.

:func:`start` runs a spec (:class:`PublishSpec`, :class:`PreviewSpec`, :class:`CleanupSpec`,
:class:`MasterSpec`) as ``python -m dataflows.transcode.tasks SPEC RESULT``, a
:class:`dataflows.children.SpecTask` the step polls. Settings come from the environment like
the flow's. Every write goes to keys derived from ids, so a task run twice overwrites the same
objects with the same content.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import msgspec

from connectors.storage import make_client
from core.events import Rendition
from core.layout import ObjectLayout
from core.settings import get_settings
from dataflows.children import SpecTask, serve
from dataflows.transcode.convert import publish_conversion
from dataflows.transcode.hls import MasterEntry
from dataflows.transcode.ladder import PlannedRendition
from dataflows.transcode.live import LivePublisher
from dataflows.transcode.outputs import JOB_METADATA, RenditionStore
from dataflows.transcode.purge import purge_video

__all__ = [
    "CleanupResult",
    "CleanupSpec",
    "LiveResult",
    "LiveSpec",
    "MasterResult",
    "MasterSpec",
    "PreviewResult",
    "PreviewSpec",
    "PublishResult",
    "PublishSpec",
    "PurgeResult",
    "PurgeSpec",
    "Spec",
    "prestart",
    "start",
]


class PublishSpec(msgspec.Struct, kw_only=True, frozen=True, tag="publish"):
    """Upload the tracks an encode unit left in ``workdir`` (and the audio track, ``audio``)."""

    video_id: str
    job_id: str
    bucket: str
    workdir: str
    planned: list[PlannedRendition]
    audio: bool = False
    profile: str = "default"  # a conversion profile's output is one file (convert.py)


class PublishedRung(msgspec.Struct, kw_only=True, frozen=True):
    rendition: Rendition
    entry: MasterEntry | None  # None: a conversion's output, in no master playlist
    duration: float = 0.0  # seconds, by ffprobe of the encoded MP4 (0: unknown)


class PublishResult(msgspec.Struct, kw_only=True, frozen=True):
    rungs: list[PublishedRung]
    audio: MasterEntry | None = None  # the job's audio track, when this unit made it
    seconds: float = 0.0  # how long the uploads took (the unit's "publish" phase)


class PreviewSpec(msgspec.Struct, kw_only=True, frozen=True, tag="previews"):
    """Poster, sprite and WebVTT from the renditions ``poster_key`` and ``sprite_key``; the
    size is the top rendition's (the thumbnails keep its aspect)."""

    video_id: str
    job_id: str
    bucket: str
    workdir: str
    poster_key: str
    sprite_key: str
    duration: float
    width: int
    height: int
    entries: list[MasterEntry]  # the final master playlist is written here too, off the worker


class PreviewResult(msgspec.Struct, kw_only=True, frozen=True):
    poster: str  # "" when none could be made (see ``warnings``)
    sprite: str  # "" for a clip too short for one (a poster alone)
    vtt: str
    master: str
    warnings: list[str] = msgspec.field(default_factory=list)  # public, for job.completed


class CleanupSpec(msgspec.Struct, kw_only=True, frozen=True, tag="cleanup"):
    """Remove what job ``job_id`` uploaded for the rungs ``labels`` of a unit that was stopped."""

    video_id: str
    job_id: str
    bucket: str
    labels: list[int]
    audio: bool = False  # the unit made the job's audio track
    profile: str = "default"  # a conversion's output is one file of its own (convert.py)


class CleanupResult(msgspec.Struct, kw_only=True, frozen=True):
    removed: list[str]


class MasterSpec(msgspec.Struct, kw_only=True, frozen=True, tag="master"):
    """(Re)write the master playlist with the rungs done so far."""

    video_id: str
    job_id: str
    bucket: str
    entries: list[MasterEntry]


class MasterResult(msgspec.Struct, kw_only=True, frozen=True):
    master: str


class LiveSpec(msgspec.Struct, kw_only=True, frozen=True, tag="live"):
    """Publish the tracks ``names`` of ``workdir`` fragment by fragment while FFmpeg writes them
    (:mod:`dataflows.transcode.live`), until ``workdir/live.stop`` exists or it is killed."""

    video_id: str
    job_id: str
    bucket: str
    workdir: str
    names: list[str]


class LiveResult(msgspec.Struct, kw_only=True, frozen=True):
    tracks: list[str]


class PurgeSpec(msgspec.Struct, kw_only=True, frozen=True, tag="purge"):
    """Remove every object of a deleted video (:func:`dataflows.transcode.purge.purge_video`)."""

    video_id: str
    job_id: str = ""
    bucket: str


class PurgeResult(msgspec.Struct, kw_only=True, frozen=True):
    removed: list[str]


Spec = PublishSpec | PreviewSpec | CleanupSpec | MasterSpec | PurgeSpec | LiveSpec
T = TypeVar("T")
PUBLISH_THREADS = 4  # tracks uploaded at once by a publishing child
MODULE = "dataflows.transcode.tasks"  # what a child runs: python -m MODULE SPEC RESULT


def start(spec: Spec, workdir: Path, name: str, result: type[T], deadline: float) -> SpecTask[T]:
    """Start ``spec`` in a child (files ``workdir/name.*``), killed if it runs past
    ``deadline`` seconds; poll it with :meth:`SpecTask.poll`."""
    return SpecTask(MODULE, spec, workdir, name, result, what=_WHAT[type(spec)], deadline=deadline)


def prestart(
    kind: type[Spec], workdir: Path, name: str, result: type[T], deadline: float, nice: int = 0
) -> SpecTask[T]:
    """Start a warm child for a spec of ``kind`` known later: Python and this module's imports
    (about a second) load meanwhile; :meth:`SpecTask.submit` hands it the spec."""
    return SpecTask(MODULE, None, workdir, name, result, what=_WHAT[kind], deadline=deadline,
                    nice=nice)  # fmt: skip


def _run(
    spec: Spec,
) -> PublishResult | PreviewResult | CleanupResult | MasterResult | PurgeResult | LiveResult:
    settings = get_settings()
    if isinstance(spec, PurgeSpec):
        client, layout = make_client(settings.storage), ObjectLayout(settings.storage)
        return PurgeResult(removed=purge_video(client, spec.bucket, layout, spec.video_id))
    store = RenditionStore(
        make_client(settings.storage), spec.bucket, ObjectLayout(settings.storage), spec.video_id,
        spec.job_id,
    )  # fmt: skip
    if isinstance(spec, CleanupSpec):
        removed = store.remove_written_by(spec.job_id, spec.labels, spec.audio)
        profile = settings.transcode.profiles.get(spec.profile)
        if profile is not None and profile.kind != "ladder":  # a conversion's one output
            key = store.layout.converted(spec.video_id, spec.profile, profile.extension)
            removed += store.remove_if_written_by([key], spec.job_id)
        return CleanupResult(removed=removed)
    if isinstance(spec, MasterSpec):
        return MasterResult(master=store.write_master(spec.entries))
    workdir = Path(spec.workdir)
    if isinstance(spec, PublishSpec) and settings.transcode.profiles[spec.profile].kind != "ladder":
        return _publish_conversion(spec, store)
    if isinstance(spec, LiveSpec):
        live = LivePublisher(store, workdir, spec.names)
        labels = [int(n.removesuffix("p")) for n in spec.names if n.endswith("p")]
        live.run(workdir / "live.stop", workdir / "live.cancel", labels, "audio" in spec.names)
        return LiveResult(tracks=sorted(live.up))
    if isinstance(spec, PublishSpec):
        return _publish_ladder(spec, store, workdir)
    poster_from, sprite_from = (
        store.client.presigned_get_object(spec.bucket, key, expires=timedelta(hours=1))
        for key in (spec.poster_key, spec.sprite_key)
    )
    workdir.mkdir(parents=True, exist_ok=True)
    previews = store.previews(
        poster_from, sprite_from, spec.duration, spec.width, spec.height, workdir
    )
    master = store.write_master(spec.entries) if spec.entries else ""  # none for a conversion
    return PreviewResult(
        poster=previews.poster, sprite=previews.sprite, vtt=previews.vtt, master=master,
        warnings=previews.warnings,
    )  # fmt: skip


def _publish_ladder(spec: PublishSpec, store: RenditionStore, workdir: Path) -> PublishResult:
    """Upload a ladder unit's tracks side by side: FFmpeg is done, both cores are free, and each
    track's upload is on the way to ``job.completed`` (one by one, the store's hashing of each
    waited for the one before)."""
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=PUBLISH_THREADS) as pool:
        made = [pool.submit(store.publish, planned, workdir) for planned in spec.planned]
        audio = pool.submit(store.publish_audio, workdir) if spec.audio else None
        rungs = [
            PublishedRung(rendition=rendition, entry=entry, duration=duration)
            for rendition, entry, duration in (m.result() for m in made)
        ]
        return PublishResult(rungs=rungs, audio=audio.result() if audio else None,
                             seconds=time.monotonic() - began)  # fmt: skip


def _publish_conversion(spec: PublishSpec, store: RenditionStore) -> PublishResult:
    """Upload a conversion profile's one output (:mod:`dataflows.transcode.convert`)."""
    profile = get_settings().transcode.profiles[spec.profile]
    meta: dict[str, str | list[str] | tuple[str]] = {JOB_METADATA: spec.job_id}
    rendition, duration = publish_conversion(
        store.client, spec.bucket, store.layout, spec.video_id, spec.profile, profile,
        spec.planned[0], Path(spec.workdir), meta,
    )  # fmt: skip
    return PublishResult(rungs=[PublishedRung(rendition=rendition, entry=None, duration=duration)])


_WHAT: dict[type, str] = {  # what failed, in words users see
    PublishSpec: "publishing failed",
    PreviewSpec: "previews failed",
    CleanupSpec: "clean-up failed",
    MasterSpec: "master playlist write failed",
    PurgeSpec: "removing the video failed",
    LiveSpec: "live publishing failed",
}


def main(argv: list[str]) -> int:
    """Run a spec (see :func:`dataflows.children.serve` for how a failure is reported)."""
    return serve(argv, Spec, _run, lambda spec: _WHAT[type(spec)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
