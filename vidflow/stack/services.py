"""The four local services, in the order they start (each in its own module; what a service is
is ``vidflow.stack.service``)."""

from __future__ import annotations

from vidflow.stack.kafka import Kafka
from vidflow.stack.minio import MinIO
from vidflow.stack.postgres import Postgres
from vidflow.stack.prometheus import Prometheus
from vidflow.stack.service import Service

__all__ = ["SERVICES"]

SERVICES: tuple[Service, ...] = (Kafka(), MinIO(), Postgres(), Prometheus())
