"""Work around an encode that runs in a child process, so no worker waits for it.

``python -m dataflows.transcode.tasks SPEC RESULT`` reads a :class:`PublishSpec` or
:class:`PreviewSpec` (JSON) from ``SPEC``, does it, and writes the JSON result to ``RESULT``
(atomically, by rename); a non-zero exit and the output are the failure. Settings come from the
environment like the flow's. Every write goes to keys derived from ids, so a task run twice
overwrites the same objects with the same content.
"""

from __future__ import annotations

import sys
import traceback
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import msgspec

from connectors.storage import make_client
from core.errors import public_reason
from core.events import Rendition
from core.layout import ObjectLayout
from core.settings import get_settings
from dataflows.transcode.hls import MasterEntry
from dataflows.transcode.ladder import PlannedRendition
from dataflows.transcode.outputs import RenditionStore
from dataflows.transcode.purge import purge_video

__all__ = [
    "CleanupResult",
    "CleanupSpec",
    "MasterResult",
    "MasterSpec",
    "PreviewResult",
    "PreviewSpec",
    "PublishResult",
    "PublishSpec",
    "PurgeResult",
    "PurgeSpec",
    "child_argv",
    "child_failure",
    "read_result",
    "write_spec",
]


class PublishSpec(msgspec.Struct, kw_only=True, frozen=True, tag="publish"):
    """Remux and upload the MP4s an encode unit left in ``workdir``."""

    video_id: str
    job_id: str
    bucket: str
    workdir: str
    planned: list[PlannedRendition]


class PublishedRung(msgspec.Struct, kw_only=True, frozen=True):
    rendition: Rendition
    entry: MasterEntry
    duration: float = 0.0  # seconds, by ffprobe of the encoded MP4 (0: unknown)


class PublishResult(msgspec.Struct, kw_only=True, frozen=True):
    rungs: list[PublishedRung]


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


class PurgeSpec(msgspec.Struct, kw_only=True, frozen=True, tag="purge"):
    """Remove every object of a deleted video (:func:`dataflows.transcode.purge.purge_video`)."""

    video_id: str
    job_id: str = ""
    bucket: str


class PurgeResult(msgspec.Struct, kw_only=True, frozen=True):
    removed: list[str]


Spec = PublishSpec | PreviewSpec | CleanupSpec | MasterSpec | PurgeSpec
T = TypeVar("T")


def write_spec(spec: Spec, path: Path) -> None:
    """Write ``spec`` for a child (a stale result beside it is removed first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.encode(spec))


def child_argv(spec_path: Path, result_path: Path) -> list[str]:
    return [sys.executable, "-m", "dataflows.transcode.tasks", str(spec_path), str(result_path)]


def _failure_path(result_path: Path) -> Path:
    return result_path.with_suffix(".failed")


def child_failure(result_path: Path) -> str:
    """The one-line public reason a failed child left beside its result ("" if none)."""
    try:
        return _failure_path(result_path).read_text(errors="replace").strip()
    except FileNotFoundError:
        return ""


def read_result(path: Path, kind: type[T]) -> T:
    return msgspec.json.decode(path.read_bytes(), type=kind)


def _run(
    spec: Spec,
) -> PublishResult | PreviewResult | CleanupResult | MasterResult | PurgeResult:
    settings = get_settings()
    if isinstance(spec, PurgeSpec):
        client, layout = make_client(settings.storage), ObjectLayout(settings.storage)
        return PurgeResult(removed=purge_video(client, spec.bucket, layout, spec.video_id))
    store = RenditionStore(
        make_client(settings.storage), spec.bucket, ObjectLayout(settings.storage), spec.video_id,
        spec.job_id,
    )  # fmt: skip
    if isinstance(spec, CleanupSpec):
        return CleanupResult(removed=store.remove_written_by(spec.job_id, spec.labels))
    if isinstance(spec, MasterSpec):
        return MasterResult(master=store.write_master(spec.entries))
    workdir = Path(spec.workdir)
    if isinstance(spec, PublishSpec):
        rungs = []
        for planned in spec.planned:
            rendition, entry, duration = store.publish(planned, workdir)
            rungs.append(PublishedRung(rendition=rendition, entry=entry, duration=duration))
        return PublishResult(rungs=rungs)
    poster_from, sprite_from = (
        store.client.presigned_get_object(spec.bucket, key, expires=timedelta(hours=1))
        for key in (spec.poster_key, spec.sprite_key)
    )
    workdir.mkdir(parents=True, exist_ok=True)
    previews = store.previews(
        poster_from, sprite_from, spec.duration, spec.width, spec.height, workdir
    )
    master = store.write_master(spec.entries)
    return PreviewResult(
        poster=previews.poster, sprite=previews.sprite, vtt=previews.vtt, master=master,
        warnings=previews.warnings,
    )  # fmt: skip


_WHAT = {
    PublishSpec: "publishing failed",
    PreviewSpec: "previews failed",
    CleanupSpec: "clean-up failed",
    MasterSpec: "master playlist write failed",
    PurgeSpec: "removing the video failed",
}


def main(argv: list[str]) -> int:
    """Run a spec; on failure the traceback goes to stderr (the task's log, for the operator)
    and one public line (:func:`core.errors.public_reason`) beside the result, for users."""
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    failure = _failure_path(result_path)
    failure.unlink(missing_ok=True)
    spec = msgspec.json.decode(spec_path.read_bytes(), type=Spec)
    try:
        result = _run(spec)
    except Exception as exc:  # noqa: BLE001 - reported as a reason, the detail logged
        traceback.print_exc()
        partial = failure.with_suffix(".failing")
        partial.write_text(public_reason(_WHAT[type(spec)], exc))
        partial.replace(failure)
        return 1
    partial = result_path.with_suffix(".partial")
    partial.write_bytes(msgspec.json.encode(result))
    partial.replace(result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
