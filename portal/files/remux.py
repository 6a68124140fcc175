"""A rung's video and the job's audio joined into one MP4 on the fly, for a download.

Since issue 12 a rung is stored video only (``{h}p.mp4``) and the audio once (``audio.mp4``);
players combine them, a downloaded file cannot. Storing a muxed copy would hold each rung's bytes
twice, so FFmpeg copies both tracks (no re-encode) into a fragmented MP4 written to a pipe, which
needs no seek back to write its index and so streams from the first byte.

The child is the portal's to end: :class:`RemuxChild` kills it when its reader stops for any
reason (the download is done, the client went away, the deadline passed) or is dropped unread,
and a bounded number run at once (:class:`RemuxSlots`).
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable

from connectors.ffmpeg import stderr_reason

__all__ = ["RemuxChild", "RemuxFailed", "RemuxSlots", "remux_command"]

CHUNK = 256 * 1024
# FFmpeg's error output kept for the log (``-v error`` writes a few lines)
_STDERR_KEPT = 64 * 1024


class RemuxFailed(RuntimeError):
    """FFmpeg stopped before the end or ran past its deadline; the text is scrubbed, public."""


def remux_command(ffmpeg: str, video: str, audio: str) -> list[str]:
    """FFmpeg copying ``video``'s first video stream and ``audio``'s first audio stream (URLs or
    paths) into one fragmented MP4 on its standard output: a fragment at each keyframe, an empty
    ``moov`` first and offsets relative to each ``moof``, so nothing is rewritten afterwards."""
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-v", "error",
        "-i", video, "-i", audio,
        "-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-map_metadata", "-1",
        "-movflags", "frag_keyframe+empty_moov+default_base_moof",
        "-f", "mp4", "pipe:1",
    ]  # fmt: skip


class RemuxSlots:
    """At most ``limit`` remuxes at once. Taking never waits (a full portal says so at once);
    a slot is given back from whichever thread ends the child, hence the lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        """Remuxes running now."""
        return self._used

    def take(self) -> Callable[[], None] | None:
        """A slot's release (callable once, later calls do nothing), or None when all are taken."""
        with self._lock:
            if self._used >= self.limit:
                return None
            self._used += 1
        given_back: list[bool] = []

        def release() -> None:
            with self._lock:
                if not given_back:
                    given_back.append(True)
                    self._used -= 1

        return release


class RemuxChild:
    """One FFmpeg child writing to a pipe, read until its end, killed on any other way out."""

    def __init__(self, argv: list[str], deadline: float, on_end: Callable[[], None]) -> None:
        """Start ``argv``; ``deadline`` seconds from now it is killed; ``on_end`` runs once when
        the child is gone (the slot given back)."""
        # a file, not a pipe (a full pipe would stall the child), closed with the child in stop()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr
            )
        except BaseException:
            self._stderr.close()
            raise
        self._ends_at = time.monotonic() + deadline
        self._on_end = on_end
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._proc.pid

    async def read(self) -> bytes:
        """The next piece of the output, b"" at its end; RemuxFailed if FFmpeg failed or the
        deadline passed (the child is then killed)."""
        remaining = self._ends_at - time.monotonic()
        if remaining <= 0:
            self.stop()
            raise RemuxFailed("the download took too long and was stopped")
        stdout = self._proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # made with stdout=PIPE, buffered
        try:
            chunk = await asyncio.wait_for(asyncio.to_thread(stdout.read1, CHUNK), remaining)
        except TimeoutError:
            self.stop()  # the read blocked in its thread ends with the pipe
            raise RemuxFailed("the download took too long and was stopped") from None
        if not chunk:
            code = await asyncio.to_thread(self._proc.wait)
            if code != 0:
                said = stderr_reason(self.stderr(), "FFmpeg could not join the tracks")
                raise RemuxFailed(said.removeprefix("<url>: "))  # the input it names, scrubbed
        return chunk

    def stream(self, first: bytes = b"") -> AsyncIterator[bytes]:
        """:meth:`chunks`, and the child stopped when that iterator is dropped unread (a client
        gone before the first byte: the generator never runs, nor its ``finally``)."""
        body = self.chunks(first)
        weakref.finalize(body, self.stop)
        return body

    async def chunks(self, first: bytes = b"") -> AsyncIterator[bytes]:
        """``first`` (already read), then the rest until FFmpeg's end; the child is stopped when
        the iteration ends, fails or is cancelled (the client went away)."""
        try:
            if first:
                yield first
            while chunk := await self.read():
                yield chunk
        finally:
            self.stop()

    def stderr(self) -> str:
        """What FFmpeg said so far (its last bytes): for the log, scrubbed before anyone sees it."""
        with self._lock:
            if self._stopped:
                return ""
            self._stderr.seek(0, 2)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - _STDERR_KEPT))
            return self._stderr.read().decode("utf-8", "replace")

    def stop(self) -> None:
        """Kill the child unless it has ended, reap it, close its pipes, run ``on_end``; once,
        from any thread (a finalizer may call it)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
        finally:
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._stderr.close()
            self._on_end()
