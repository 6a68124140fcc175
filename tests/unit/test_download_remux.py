"""The download's pure parts: the FFmpeg command that joins a rung and its audio (a copy into a
fragmented MP4 on a pipe), the bound on remuxes at once, which rungs are joined, the setting."""

from __future__ import annotations

import pytest

from core.layout import ObjectLayout
from core.settings import SettingsError, StorageSettings, load_settings
from portal.files.remux import RemuxSlots, remux_command
from portal.files.rungs import download_path, is_cmaf_rung
from portal.models import Rendition


def test_the_command_copies_the_rungs_video_and_the_jobs_audio_into_a_streamable_mp4() -> None:
    argv = remux_command("/usr/bin/ffmpeg", "http://store/v?sig=1", "http://store/a?sig=2")
    assert argv[0] == "/usr/bin/ffmpeg"
    inputs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-i"]
    assert inputs == ["http://store/v?sig=1", "http://store/a?sig=2"]
    maps = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-map"]
    assert maps == ["0:v:0", "1:a:0"]  # the rung's video, the audio track's audio, nothing else
    assert argv[argv.index("-c") + 1] == "copy"  # no re-encode
    assert not any(arg.startswith(("-c:", "-b:", "-vf", "-af", "-filter")) for arg in argv)
    assert argv[argv.index("-movflags") + 1] == "frag_keyframe+empty_moov+default_base_moof"
    assert argv[-3:] == ["-f", "mp4", "pipe:1"]  # to the portal, never a file
    assert "-nostdin" in argv  # the child never reads the portal's stdin


def test_slots_bound_the_remuxes_and_each_is_given_back_once() -> None:
    slots = RemuxSlots(2)
    first, second = slots.take(), slots.take()
    assert first is not None and second is not None
    assert slots.take() is None and slots.used == 2
    first()
    first()  # a second release (finalizer after finally) gives nothing more back
    assert slots.used == 1
    third = slots.take()
    assert third is not None and slots.take() is None


def test_only_a_cmaf_rung_is_joined() -> None:
    layout = ObjectLayout(StorageSettings())
    cmaf = Rendition(video_id="v1", height=720, width=1280, key=layout.rendition("v1", 720),
                     hls=layout.hls_playlist("v1", 720))  # fmt: skip
    earlier = Rendition(video_id="v1", height=720, width=1280, key=layout.rendition("v1", 720),
                        hls=layout.legacy_hls_playlist("v1", 720))  # fmt: skip
    converted = Rendition(video_id="v1", height=90, width=160, hls="",
                          key=layout.converted("v1", "webm-vp9", "webm"))  # fmt: skip
    assert is_cmaf_rung(layout, "v1", cmaf)
    assert not is_cmaf_rung(layout, "v1", earlier)  # its MP4 has its audio in
    assert not is_cmaf_rung(layout, "v1", converted)
    assert download_path("v1", 720) == "/videos/v1/download/720"


def test_the_remux_limit_is_a_setting_of_at_least_one() -> None:
    assert load_settings({}).portal.download_remuxes == 4
    assert load_settings({"VIDFLOW_PORTAL_DOWNLOAD_REMUXES": "2"}).portal.download_remuxes == 2
    with pytest.raises(SettingsError, match="download_remuxes"):
        load_settings({"VIDFLOW_PORTAL_DOWNLOAD_REMUXES": "0"})
