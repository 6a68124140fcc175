"""``vidflow replay``: reprocess videos, rerun a flow from the beginning, resend dead letters.

What each guarantees is in the README ("Replay"). In short: a reprocess is a new job per video
(``core.jobs``), whose outputs land under the same keys with the same content plus any rung the
profile gained; a flow rerun starts from a fresh recovery store, so the flow reads its input
topics from offset 0 again and re-derives the same ids (the projector drops what it has); a
resent dead letter is its original bytes on its original topic, recorded in the portal's
``dead_letter_replays`` exactly as the portal's own Replay button records it.

The roof may import the portal: the selections are the portal's queries over its projection.
"""

from __future__ import annotations

from vidflow.replay.cli import replay

__all__ = ["replay"]
