"""FFmpeg encoder arguments by codec (pure): one place that knows each encoder's options.

Every video encoder gets a bit rate and a fixed GOP (keyframes every segment, no scene-cut
keyframes: segments of a ladder cut at the same instants in every rung). The speed settings
suit a shared CPU: x264/x265 take the configured preset, SVT-AV1 the matching numeric preset,
libvpx-vp9 realtime with row multithreading (its default "good" deadline is many times slower).
"""

from __future__ import annotations

from core.profiles import AudioCodec, Profile, VideoCodec
from dataflows.transcode.ladder import PlannedRendition

__all__ = ["audio_codec_args", "codec_args", "video_codec_args"]

# x264's preset names mapped onto SVT-AV1's 0 (slowest) to 13 (fastest)
_SVT_PRESET = {
    "ultrafast": 12,
    "superfast": 11,
    "veryfast": 10,
    "faster": 9,
    "fast": 8,
    "medium": 7,
    "slow": 5,
    "slower": 4,
    "veryslow": 2,
}


def codec_args(
    codec: VideoCodec, kbps: int, gop: int, preset: str = "veryfast", container: str = "mp4"
) -> list[str]:
    """Arguments for one video output in ``codec`` at ``kbps`` with a keyframe every ``gop``
    frames (after ``-map``, before the audio's)."""
    rate = [
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps * 107 // 100}k", "-bufsize", f"{kbps * 3 // 2}k",
    ]  # fmt: skip
    keys = ["-g", str(gop), "-keyint_min", str(gop)]
    if codec == "h264":
        return [
            "-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-pix_fmt", "yuv420p",
            *rate, *keys, "-sc_threshold", "0",
        ]  # fmt: skip
    if codec == "hevc":
        # hvc1 (parameter sets in the sample entry) is what Apple players and MSE accept in MP4
        tag = ["-tag:v", "hvc1"] if container == "mp4" else []
        x265 = f"log-level=error:keyint={gop}:min-keyint={gop}:scenecut=0"
        return [
            "-c:v", "libx265", "-preset", preset, "-pix_fmt", "yuv420p", *rate, *keys,
            "-x265-params", x265, *tag,
        ]  # fmt: skip
    if codec == "av1":
        # FFmpeg 5.1's libsvtav1 takes an average rate only (no maxrate/bufsize)
        speed = str(_SVT_PRESET.get(preset, 10))
        return [
            "-c:v", "libsvtav1", "-preset", speed, "-pix_fmt", "yuv420p", "-b:v", f"{kbps}k",
            "-g", str(gop),
        ]  # fmt: skip
    return [
        "-c:v", "libvpx-vp9", "-row-mt", "1", "-deadline", "realtime", "-cpu-used", "8",
        "-pix_fmt", "yuv420p", *rate, *keys,
    ]  # fmt: skip


def video_codec_args(
    profile: Profile, rendition: PlannedRendition, gop: int, preset: str = "veryfast"
) -> list[str]:
    """The video encoder arguments of one rendition of ``profile`` (a ladder's rung or a
    single conversion's output)."""
    return codec_args(profile.video_codec, rendition.video_kbps, gop, preset, profile.container)


def audio_codec_args(codec: AudioCodec, kbps: int) -> list[str]:
    """Arguments for the audio output, stereo (FFmpeg resamples for Opus, which is 48 kHz)."""
    encoder = {"aac": "aac", "opus": "libopus", "mp3": "libmp3lame"}[codec]
    return ["-c:a", encoder, "-b:a", f"{kbps}k", "-ac", "2"]
