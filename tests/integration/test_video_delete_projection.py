"""``video.deleted`` in the projection: the video, its timeline and renditions go, a tombstone
stays, so neither a late event of the video nor a rebuild from the topic brings it back."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from core import events as ev
from core.settings import Settings
from portal.projector import Projector, drop_projection
from portal.rebuild import replay_to_end
from tests.integration.test_portal import life_of, produce

pytestmark = pytest.mark.integration


def _rows(settings: Settings, video_id: str) -> dict[str, int]:
    engine = create_engine(settings.postgres.url)
    try:
        with engine.connect() as conn:
            return {
                table: conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE {column} = :v"), {"v": video_id}
                ).scalar_one()
                for table, column in (
                    ("videos", "id"), ("timeline", "video_id"), ("renditions", "video_id"),
                    ("chunks", "video_id"), ("run_progress", "video_id"),
                    ("video_tombstones", "video_id"),
                )
            }  # fmt: skip
    finally:
        engine.dispose()


def test_a_deleted_video_stays_dropped_after_a_late_event_and_a_rebuild(
    portal_settings: Settings,
) -> None:
    gone, kept = uuid.uuid4().hex, uuid.uuid4().hex
    job = f"job-{gone}"
    deleted = ev.VideoDeleted(
        id=ev.event_id("del-1", "video.deleted"), video_id=gone, run="del-1", seq=1,
        requested_by="alice",
    )  # fmt: skip
    late = [
        ev.UnitProgress(id="late-1", run=f"{job}:240p", seq=7, job_id=job, unit="240p",
                        percent=90, video_id=gone),
        ev.IngestStarted(id="late-2", run=f"ingest2:{gone}", seq=1, origin="upload",
                         filename="again.mp4", video_id=gone),
    ]  # fmt: skip
    produce(portal_settings, [*life_of(gone, "gone.mp4"), *life_of(kept, "kept.mp4")])
    replay_to_end(Projector(portal_settings))
    assert _rows(portal_settings, gone)["videos"] == 1
    assert _rows(portal_settings, gone)["renditions"] == 1

    produce(portal_settings, [deleted, *late, deleted])  # the delete replayed too
    replay_to_end(Projector(portal_settings))
    dropped = {
        "videos": 0, "timeline": 0, "renditions": 0, "chunks": 0, "run_progress": 0,
        "video_tombstones": 1,
    }  # fmt: skip
    assert _rows(portal_settings, gone) == dropped
    survivor = _rows(portal_settings, kept)
    assert survivor["videos"] == 1 and survivor["timeline"] and survivor["renditions"] == 1

    drop_projection(portal_settings)
    replay_to_end(Projector(portal_settings))  # a rebuild from the topic
    assert _rows(portal_settings, gone) == dropped
    assert _rows(portal_settings, kept) == survivor
