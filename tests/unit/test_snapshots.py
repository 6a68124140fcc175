"""A snapshot from an older release (a field missing) resumes with the field's default."""

from __future__ import annotations

import pickle

from dataflows.ingest.state import StreamState
from dataflows.transcode.state import CollectState


def test_fields_added_since_the_snapshot_get_their_defaults() -> None:
    state = CollectState()
    state.closed = ["job-1"]
    del vars(state)["cancelling"], vars(state)["ended_at"]  # as pickled before they existed
    restored = pickle.loads(pickle.dumps(state))
    assert restored.cancelling == {} and restored.ended_at == 0.0
    assert restored.closed == ["job-1"] and restored.idle  # what was saved is kept


def test_a_current_snapshot_round_trips_unchanged() -> None:
    stream = StreamState(stream_id="s", video_id="v", origin="watch", location="/x", filename="x")
    stream.known_size = 42
    assert pickle.loads(pickle.dumps(stream)) == stream
