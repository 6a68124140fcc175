"""Figures of one transcode job, from its status events and the objects it left in the bucket.

Phases (seconds, from the events' own ``ts``, so Kafka delivery to the bench does not count):
``queue_and_start`` from the request to the first ``unit.started``; ``rung_<h>p`` from the
``unit.started`` of the unit that makes rung h to that rung's ``rendition.completed``;
``publish`` from the last ``rendition.completed`` to ``job.completed`` (master playlist, DASH
manifest, poster, sprite); ``total`` from the request to ``job.completed``. The flow's own
timings ride on its status events (``phases``): each rung's ``rendition.completed`` carries its
unit's (``flow_<h>p_<phase>``: queued, first_segment, encode, publish, publish_wall, and
``child_startup`` = publish_wall - publish, the publishing child's start-up and polling), and
``job.completed`` the job's (``flow_previews``).

Bytes stored per byte of encoded output: every object under the video's rendition prefixes
(``renditions/{video}/`` and ``hls/{video}/``), summed, divided by one copy of each rung's
encoded media. Objects are grouped by rung: the first ``<digits>p`` in the key below the video's
prefix (``240p.mp4``, ``240p/seg3.ts``, ``hls/…/240p.mp4``), else the file's stem (so a job's
one audio track is a group of its own). Playlists, manifests and WebVTT are metadata: stored,
never encoded. One copy of a group is its largest media object: the rung's fMP4 in the CMAF
layout (ratio ≈ 1 plus playlists), the MP4 rendition in the older layout whose TS segments copy
it again (ratio ≈ 2). Temporaries a job leaves behind count as stored, so they show.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath

from core import events as ev

__all__ = ["METADATA_SUFFIXES", "encoded_bytes", "phases", "rung_of", "stored_per_encoded"]

METADATA_SUFFIXES = frozenset({".m3u8", ".mpd", ".vtt", ".json"})
_RUNG = re.compile(r"(?<![0-9A-Za-z])([0-9]{2,5}p)(?![0-9A-Za-z])")


def rung_of(tail: str) -> str:
    """The rung an object below a video's prefix belongs to (see the module docstring)."""
    found = _RUNG.search(tail)
    return found.group(1) if found else PurePosixPath(tail).stem


def encoded_bytes(objects: Mapping[str, int]) -> int:
    """One copy of each rung's media: the largest media object per rung (``objects``: the key
    below the video's prefix → size)."""
    largest: dict[str, int] = {}
    for tail, size in objects.items():
        if PurePosixPath(tail).suffix in METADATA_SUFFIXES:
            continue
        rung = rung_of(tail)
        largest[rung] = max(largest.get(rung, 0), size)
    return sum(largest.values())


def stored_per_encoded(objects: Mapping[str, int]) -> float:
    """Bytes stored under the video's rendition prefixes per byte of encoded output."""
    encoded = encoded_bytes(objects)
    if encoded == 0:
        raise ValueError("no encoded media among the stored objects")
    return sum(objects.values()) / encoded


def phases(events: Iterable[ev.AnyEvent], requested_at: float) -> dict[str, float]:
    """Where a finished job's time went (see the module docstring); empty when not finished."""
    started: list[ev.UnitStarted] = []
    rungs: list[ev.RenditionCompleted] = []
    done: ev.JobCompleted | None = None
    for event in events:
        match event:
            case ev.UnitStarted():
                started.append(event)
            case ev.RenditionCompleted():
                rungs.append(event)
            case ev.JobCompleted():
                done = event
    if done is None or not started:
        return {}
    figures = {"queue_and_start": min(u.ts for u in started) - requested_at}
    for rung in rungs:
        unit = _unit_of(started, rung)
        if unit is not None:
            figures[f"rung_{rung.rendition.height}p"] = rung.ts - unit.ts
    if rungs:
        figures["publish"] = done.ts - max(r.ts for r in rungs)
    figures["total"] = done.ts - requested_at
    for rung in rungs:
        figures.update(_unit_phases(f"flow_{rung.rendition.height}p", rung.phases))
    figures.update({f"flow_{name}": value for name, value in done.phases.items()})
    return figures


def _unit_phases(prefix: str, reported: Mapping[str, float]) -> dict[str, float]:
    """One unit's phases, and its publishing child's start-up when both walls are there."""
    figures = {f"{prefix}_{name}": value for name, value in reported.items()}
    if "publish_wall" in reported and "publish" in reported:
        figures[f"{prefix}_child_startup"] = reported["publish_wall"] - reported["publish"]
    return figures


def _unit_of(
    started: Sequence[ev.UnitStarted], rung: ev.RenditionCompleted
) -> ev.UnitStarted | None:
    """The last start, before the rung completed, of a unit that makes its height."""
    makers = [
        u for u in started if rung.rendition.height in u.heights and u.ts <= rung.ts
    ]  # fmt: skip
    return max(makers, key=lambda u: u.ts, default=None)
