"""FFmpeg ``-progress`` output (pure): key=value lines in blocks ending with ``progress=...``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ProgressParser", "ProgressReading", "ProgressThrottle"]


@dataclass(frozen=True)
class ProgressReading:
    """One block of FFmpeg progress."""

    percent: float
    fps: float
    speed: float
    out_seconds: float
    ended: bool


def _number(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return float(text.strip().rstrip("x"))
    except ValueError:  # "N/A"
        return 0.0


class ProgressParser:
    """Feed it text as it arrives; it returns a reading for each completed block."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self._fields: dict[str, str] = {}
        self._pending = ""

    def feed(self, text: str) -> list[ProgressReading]:
        readings: list[ProgressReading] = []
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            key, sep, value = line.strip().partition("=")
            if not sep:
                continue
            self._fields[key] = value
            if key == "progress":
                readings.append(self._reading(ended=value == "end"))
                self._fields = {}
        return readings

    def _reading(self, ended: bool) -> ProgressReading:
        micros = _number(self._fields.get("out_time_us") or self._fields.get("out_time_ms"))
        seconds = max(0.0, micros / 1_000_000)
        percent = (
            100.0 if ended else (100.0 * seconds / self.duration if self.duration > 0 else 0.0)
        )
        return ProgressReading(
            percent=min(100.0, percent),
            fps=_number(self._fields.get("fps")),
            speed=_number(self._fields.get("speed")),
            out_seconds=seconds,
            ended=ended,
        )


class ProgressThrottle:
    """Lets a reading through at most every ``interval`` seconds, and always the final one."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last = float("-inf")

    def allow(self, reading: ProgressReading, now: float) -> bool:
        if reading.ended or now - self._last >= self.interval:
            self._last = now
            return True
        return False
