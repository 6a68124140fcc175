"""The one FFmpeg command line of an encode unit: a ladder's rungs or a conversion's output."""

from __future__ import annotations

from pathlib import Path

from connectors.ffmpeg import ffmpeg_binary
from core.profiles import Profile
from dataflows.transcode.commands import encode_command
from dataflows.transcode.convert import convert_command
from dataflows.transcode.live_unit import unit_audio_kbps
from dataflows.transcode.messages import UnitTask

__all__ = ["unit_command"]


def unit_command(
    task: UnitTask, profile: Profile, source: str, workdir: Path, preset: str
) -> list[str]:
    """The unit's FFmpeg run. A ladder unit decodes once and writes each of its rungs as a
    fragmented MP4 (plus the job's one audio track when it holds the lowest rung); a single or
    audio-only profile writes its one output file (``convert.py``)."""
    plan = task.plan
    planned = [plan.planned_for(label) for label in task.labels]
    if profile.kind != "ladder":
        return convert_command(
            ffmpeg_binary(), source, plan.request.probe, planned[0], profile, workdir, preset
        )
    return encode_command(
        ffmpeg_binary(), source, plan.request.probe, planned, workdir, preset,
        audio_kbps=unit_audio_kbps(task), profile=profile,
    )  # fmt: skip
