"""The projector's lag: what the projection has not recorded yet, per partition, as the gauge
Prometheus scrapes (the portal's progress is only as fresh as the projection)."""

from __future__ import annotations

import uuid

import msgspec
from prometheus_client import REGISTRY

from core.settings import Settings
from portal.projector import Projector
from portal.rebuild import replay_to_end
from tests.integration.test_portal import life_of, produce


def _gauge_total(settings: Settings) -> float:
    topics = (settings.kafka.topic_status, settings.kafka.topic_dlq)
    return sum(
        REGISTRY.get_sample_value(
            "vidflow_projector_lag_messages", {"topic": topic, "partition": str(partition)}
        )
        or 0.0
        for topic in topics
        for partition in range(settings.kafka.partitions)
    )


def test_lag_counts_what_the_projection_has_not_recorded_and_drops_to_zero(
    portal_settings: Settings,
) -> None:
    events = life_of(uuid.uuid4().hex, "lag.mp4")
    produce(portal_settings, events)

    behind = Projector(portal_settings)
    try:
        lag = behind.report_lag()
    finally:
        behind.consumer.close()
    assert sum(lag.values()) == len(events)
    assert _gauge_total(portal_settings) == len(events)

    replay_to_end(Projector(portal_settings))  # what `vidflow up`'s projector does, to the end

    caught_up = Projector(portal_settings)
    try:
        lag = caught_up.report_lag()
    finally:
        caught_up.consumer.close()
    assert lag and set(lag.values()) == {0}
    assert _gauge_total(portal_settings) == 0


def test_a_database_away_is_no_lag_and_no_crash(portal_settings: Settings) -> None:
    """Measuring needs the database: while it is away the gauge keeps its last values and
    the projector goes on (it retries its batches on its own)."""
    away = msgspec.structs.replace(
        portal_settings, postgres=msgspec.structs.replace(portal_settings.postgres, port=1)
    )
    projector = Projector(away)
    try:
        assert projector.report_lag() == {}
    finally:
        projector.consumer.close()
