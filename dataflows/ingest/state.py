"""The per-stream state of the ingest flow: picklable facts only (offsets, digests, ids).

Never a hash object or a file handle: Bytewax snapshots this state for recovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.events import ChunkRef
from dataflows.kafka_io import Inbound
from dataflows.snapshots import Resumable

__all__ = ["Origin", "StreamState"]

Origin = Literal["watch", "upload"]


@dataclass
class StreamState(Resumable):
    """One version of one source being ingested."""

    stream_id: str
    video_id: str
    origin: Origin
    location: str  # a local path, or an object key in ``bucket``
    bucket: str = ""
    filename: str = ""
    owner: str = ""
    profile: str = "default"
    inode: int = 0
    known_size: int = 0
    next_offset: int = 0
    chunks: list[ChunkRef] = field(default_factory=list)
    source_upload: str = ""  # the multipart upload the source is composed in, chunk by chunk
    part_etags: list[str] = field(default_factory=list)  # of the chunks copied into it so far
    seq: int = 0
    final: bool = False  # the size will not change any more (closed file, finished upload)
    # events that came while the stream was completing: applied once it ended (to a new stream)
    deferred: list[Inbound] = field(default_factory=list)

    def next_seq(self) -> int:
        """The sequence number of the next status event of this run."""
        self.seq += 1
        return self.seq

    @property
    def run(self) -> str:
        """Status events of an ingest form one run named after the video."""
        return f"ingest:{self.video_id}"

    def backlog(self, chunk_size: int) -> int:
        """Whole chunks readable now."""
        return max(0, self.known_size - self.next_offset) // chunk_size
