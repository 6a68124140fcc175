"""Renditions shorter than their source: the sign of a truncated source.

The first 60 % of a faststart MP4 still probes at its full length (the index is at the front),
FFmpeg decodes what is there and exits 0, and the ladder comes out short. Comparing each
rendition's duration with the probed one is the only place this shows, so it is made here and
reported (a warning, or the job's failure by setting), never left silent.
"""

from __future__ import annotations

from core.errors import public_reason

__all__ = [
    "MIN_SHORTFALL",
    "SHORTFALL_SHARE",
    "allowed_shortfall",
    "truncated",
    "truncation_reason",
]

MIN_SHORTFALL = 1.0  # seconds: encoders and containers round a little, audio priming adds more
SHORTFALL_SHARE = 0.03


def allowed_shortfall(probed: float) -> float:
    """Seconds a rendition may lack against ``probed``: max(1 s, 3 %)."""
    return max(MIN_SHORTFALL, SHORTFALL_SHARE * probed)


def truncated(probed: float, durations: dict[int, float]) -> dict[int, float]:
    """The rungs (label -> seconds) shorter than ``probed`` by more than the allowance; a
    duration of 0 is unknown (nothing to compare), not short."""
    limit = allowed_shortfall(probed)
    return {
        label: seconds
        for label, seconds in durations.items()
        if seconds > 0 and probed - seconds > limit
    }


def truncation_reason(probed: float, durations: dict[int, float]) -> str | None:
    """A one-line public text naming the short rungs, or ``None`` when none is."""
    short = truncated(probed, durations)
    if not short:
        return None
    rungs = ", ".join(f"{label}p {seconds:.1f} s" for label, seconds in sorted(short.items()))
    return public_reason(
        "renditions shorter than the source (the source may be truncated): "
        f"{rungs} of {probed:.1f} s probed"
    )
