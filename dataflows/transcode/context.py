"""What every step of the transcode flow on one process shares."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from minio import Minio

from core import events as ev
from core.layout import ObjectLayout
from core.profiles import Profile
from core.settings import Settings
from dataflows.children import Child
from dataflows.kafka_io import Outbound
from dataflows.transcode import metrics
from dataflows.transcode.cluster import ClusterShape, UnitMode
from dataflows.transcode.sources import SourceLocator

__all__ = ["Sequenced", "TranscodeContext"]

S = TypeVar("S", bound=ev.StatusBase)


class TranscodeContext:
    """Settings, storage client, profiles, the cluster and the encode slots of each worker."""

    def __init__(
        self,
        settings: Settings,
        client: Minio,
        profiles: Mapping[str, Profile],
        shape: ClusterShape,
        unit_mode: UnitMode,
    ) -> None:
        self.settings = settings
        self.client = client
        self.profiles = profiles
        self.shape = shape
        self.unit_mode = unit_mode
        self.layout = ObjectLayout(settings.storage)
        self.sources = SourceLocator(client, settings.storage.bucket, self.layout)
        self.workroot = Path(settings.home).resolve() / "work" / "transcode"
        self._slots: dict[tuple[int, bool], int] = {}
        self._waiving: dict[int, Child] = {}  # pid -> demoted FFmpeg still at niceness 0
        self._lock = threading.Lock()

    def take_slot(self, early: bool = False, force: bool = False) -> bool:
        """One of this worker's encode slots, if free (a worker is a thread, and every key of a
        step on a worker runs on that thread). ``early`` units have slots of their own, so a new
        video's first rung never waits behind another video's long ladder. ``force``: counted
        even past the limit (an encode moving from an early slot, ``slots.UnitSlot.demote``)."""
        limits = self.settings.transcode
        limit = limits.early_encodes_per_worker if early else limits.max_encodes_per_worker
        with self._lock:
            slot = (threading.get_ident(), early)
            if self._slots.get(slot, 0) >= limit and not force:
                return False
            self._slots[slot] = self._slots.get(slot, 0) + 1
            metrics.RUNNING.inc()
            return True

    def waive_later(self, ffmpeg: Child) -> None:
        """``ffmpeg`` gives its priority up (``bulk_nice``) when another unit starts an encode
        (:meth:`waive_now`); until then it keeps the CPU nobody else here asks for."""
        with self._lock:
            self._waiving[ffmpeg.process.pid] = ffmpeg

    def waive_now(self) -> None:
        """A unit starts an encode: every demoted FFmpeg of this process gives way to it."""
        with self._lock:
            waiving, self._waiving = list(self._waiving.values()), {}
        for ffmpeg in waiving:
            ffmpeg.renice(self.settings.transcode.bulk_nice)  # one that ended is skipped

    def forget(self, ffmpeg: Child) -> None:
        """``ffmpeg`` has ended (or was reniced): nothing to waive for it."""
        with self._lock:
            self._waiving.pop(ffmpeg.process.pid, None)

    def give_slot(self, early: bool = False) -> None:
        with self._lock:
            slot = (threading.get_ident(), early)
            self._slots[slot] = max(0, self._slots.get(slot, 0) - 1)
            metrics.RUNNING.dec()


class Sequenced:
    """Status events of one ``run`` with their own sequence (the portal orders per run)."""

    def __init__(self, ctx: TranscodeContext) -> None:
        self.ctx = ctx

    def status(
        self,
        cls: type[S],
        *,
        video_id: str,
        run: str,
        seq: int,
        stable_id: str = "",
        id_scope: str = "",
        **fields: Any,
    ) -> Outbound:
        """``stable_id``: a milestone whose id comes from what it says (``id_scope`` + it), so a
        replay after a crash repeats the same id; otherwise the id is (run, seq, type)."""
        tag = str(cls.__struct_config__.tag)
        event_id = (
            ev.event_id(id_scope or run, stable_id) if stable_id else ev.event_id(run, seq, tag)
        )
        event = cls(id=event_id, video_id=video_id, run=run, seq=seq, **fields)
        return Outbound(self.ctx.settings.kafka.topic_status, event)
