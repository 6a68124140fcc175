"""Prometheus metrics every flow shares (served by ``connectors.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["DEAD_LETTERS"]

# Counted where a flow hands a dead letter to its Kafka sink: the "dead letters arriving" alert
# (deploy/prometheus/alerts.yml) reads it, so an operator hears of them without polling the page.
DEAD_LETTERS = Counter("vidflow_dead_letters", "Dead letters a flow sent to vidflow.dlq.")
