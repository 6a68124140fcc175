"""The logic beside ``dataflows/transcode_flow.py``: ladders, FFmpeg commands, progress, HLS."""
