"""Which encode slot a unit holds, and so FFmpeg's niceness (issue 12).

A job's early unit makes its lowest rung, whose first fragment is the job's first playable
moment. On one process that unit is the whole ladder (one decode: a unit of its own for the
lowest rung would decode the source a second time, the flow's largest cost over its FFmpeg
work). It takes an early slot at niceness 0 when one is free, else a bulk one; once a video
track of it is live (the job plays) it is *demoted*: its FFmpeg is reniced to ``bulk_nice`` and
it moves to a bulk slot, so the next video's early unit gets the CPU and an early slot first.
The renice waits until another unit of the process starts an encode: alone on the machine a
niced encode gains nothing and loses the CPU to whatever else runs (a process of another
cluster member on the same machine does not make it give way).
"""

from __future__ import annotations

from dataflows.children import Child
from dataflows.transcode.context import TranscodeContext

__all__ = ["UnitSlot"]


class UnitSlot:
    """One unit's slot: none, early (``held is True``) or bulk (``held is False``)."""

    def __init__(self, ctx: TranscodeContext) -> None:
        self.ctx = ctx
        self.held: bool | None = None
        self.demoted: Child | None = None  # its FFmpeg, once demoted

    def take(self, early: bool) -> bool:
        """An early slot for an early unit when one is free, else a bulk slot; whether any."""
        if early and self.ctx.take_slot(early=True):
            self.held = True
        elif self.ctx.take_slot(early=False):
            self.held = False
        if self.held is not None:
            self.ctx.waive_now()  # this unit's encode starts: demoted ones give way
        return self.held is not None

    @property
    def nice(self) -> int:
        """FFmpeg's niceness in this slot."""
        return 0 if self.held else self.ctx.settings.transcode.bulk_nice

    def demote(self, ffmpeg: Child) -> None:
        """The job plays: the rest of the encode is bulk work, at the bulk niceness once another
        unit starts (idempotent)."""
        if not self.held:
            return
        self.ctx.waive_later(ffmpeg)  # reniced when another unit starts an encode
        self.demoted = ffmpeg
        self.ctx.give_slot(early=True)
        self.ctx.take_slot(early=False, force=True)  # running already: never stopped for it
        self.held = False

    def give(self) -> None:
        """Give the slot back (idempotent)."""
        if self.demoted is not None:
            self.ctx.forget(self.demoted)
            self.demoted = None
        if self.held is not None:
            self.ctx.give_slot(early=self.held)
            self.held = None
