"""A stream's whole-file SHA-256, computed as its bytes go by, beside the chunk I/O."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["FileDigest"]


class FileDigest:
    """The file's SHA-256, fed batch by batch in order on the one hashing thread.

    Not state (hash objects do not pickle): a stream resumed past its first byte has none
    (``known=False``) and its completion verifies by reading the whole source back instead.
    """

    def __init__(self, hashing: ThreadPoolExecutor, known: bool = True) -> None:
        self._hashing = hashing
        self._sha = hashlib.sha256() if known else None
        self._fed: Future[None] | None = None

    def feed(self, blocks: list[bytes]) -> None:
        """Hash one batch's bytes in order on the hashing thread (beside the next batch's I/O)."""
        sha = self._sha
        if sha is None or not blocks:
            return

        def update() -> None:
            for block in blocks:
                sha.update(block)

        self._fed = self._hashing.submit(update)

    def forget(self) -> None:
        """No digest after all (the bytes were not read: an upload completed from its
        manifest); completion then takes the SHA-256 from elsewhere."""
        self.wait()
        self._sha = None

    def wait(self) -> None:
        """Block until the bytes fed so far are hashed (and their buffers released)."""
        if self._fed is not None:
            self._fed.result()
            self._fed = None

    def hexdigest(self) -> str | None:
        """The file's SHA-256 once every byte has been fed, or None after a resume (blocks
        until the hashing is done: called on a completion thread)."""
        if self._sha is None:
            return None
        self.wait()
        return self._sha.hexdigest()
