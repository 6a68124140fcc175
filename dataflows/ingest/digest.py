"""A stream's whole-file SHA-256, computed as its bytes go by."""

from __future__ import annotations

import hashlib

__all__ = ["FileDigest"]


class FileDigest:
    """The file's SHA-256, fed chunk by chunk in file order.

    Fed on the worker thread, in the order the chunks are recorded, while the next parts are in
    flight on the I/O threads (hashlib lets go of the GIL for large buffers): the chunks' bytes
    are released as soon as they are recorded, and no queue of bytes waits for a hashing thread.

    Not state (hash objects do not pickle): a stream resumed past its first byte has none
    (``known=False``) and its completion verifies by reading the whole source back instead.
    """

    def __init__(self, known: bool = True) -> None:
        self._sha = hashlib.sha256() if known else None

    def feed(self, blocks: list[bytes]) -> None:
        """Hash the next bytes of the file, in order."""
        if self._sha is None:
            return
        for block in blocks:
            self._sha.update(block)

    def forget(self) -> None:
        """No digest after all (the bytes were not read: an upload completed from its
        manifest); completion then takes the SHA-256 from elsewhere."""
        self._sha = None

    def hexdigest(self) -> str | None:
        """The file's SHA-256 once every byte has been fed, or None after a resume (called on
        a completion thread, after the last chunk was fed on the worker thread)."""
        return None if self._sha is None else self._sha.hexdigest()
