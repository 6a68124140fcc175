"""A snapshot from an older release (a field missing) resumes with the field's default."""

from __future__ import annotations

import pickle
from pathlib import Path

from dataflows.ingest.state import StreamState
from dataflows.transcode.encode import EncodeLogic
from dataflows.transcode.messages import UnitTask
from dataflows.transcode.plan import PlanLogic
from dataflows.transcode.state import CollectState, EncodeState, UnitStatus
from tests.unit.test_transcode_logic import context, request


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


def test_a_unit_state_stored_as_a_string_by_an_older_release_resumes(tmp_path: Path) -> None:
    """Unit states are an enum now; an older snapshot holds the plain string ("encoding"): it
    loads as the enum member, and the resumed unit, whose FFmpeg died with the old process, is
    run again (pending)."""
    ctx = context(tmp_path)
    planned, _ = PlanLogic(ctx, None).on_item(request())
    task = next(item for item in planned if isinstance(item, UnitTask))
    for old, resumed_as in [
        ("encoding", UnitStatus.PENDING),
        ("publishing", UnitStatus.PENDING),
        ("pending", UnitStatus.PENDING),
        ("cleaning", UnitStatus.CLEANING),
    ]:
        state = EncodeState(task, attempt=1)
        vars(state)["status"] = old  # as an older release pickled it: a str, not the enum
        restored = pickle.loads(pickle.dumps(state))
        assert type(restored.status) is UnitStatus and restored.status == old
        logic = EncodeLogic(ctx, restored)
        assert logic.state is not None and logic.state.status is resumed_as
        assert pickle.loads(pickle.dumps(logic.snapshot())).status is resumed_as
