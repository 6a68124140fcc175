"""Health: ``/healthz`` (the process lives), ``/readyz`` (Kafka, MinIO and PostgreSQL answer)
and ``/metrics`` (Prometheus).

``/readyz`` says the portal's dependencies answer, so a load balancer stops sending traffic
while one is down. Every check runs at once with its own short timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import msgspec
import prometheus_client
from confluent_kafka.admin import AdminClient
from litestar import MediaType, Response, get
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from minio import Minio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import public_reason
from core.logs import get_logger
from portal.deps import KafkaAdmin, Sessions, SettingsDep, StorageProbe

__all__ = ["Health", "Readiness", "healthz", "metrics", "readyz"]

TIMEOUT = 3.0
log = get_logger("vidflow.portal.health")


async def _kafka(admin: AdminClient) -> None:
    metadata = await asyncio.to_thread(admin.list_topics, timeout=TIMEOUT)
    if not metadata.brokers:
        raise ConnectionError("no broker in metadata")


async def _minio(client: Minio, bucket: str) -> None:
    if not await asyncio.to_thread(client.bucket_exists, bucket):
        raise LookupError(f"bucket {bucket} is missing")


async def _postgres(maker: async_sessionmaker[AsyncSession]) -> None:
    async with maker() as session:
        await session.execute(text("SELECT 1"))


async def _run(name: str, check: Awaitable[None]) -> tuple[str, str]:
    try:
        await asyncio.wait_for(check, TIMEOUT + 1)
    except TimeoutError:
        return name, f"timed out after {TIMEOUT + 1:.0f}s"
    except Exception as exc:  # noqa: BLE001 - any failure is the answer, not a crash
        # /readyz is open to anyone (probes): a short reason, the detail in the log
        log.warning("readiness check failed", check=name, error=f"{type(exc).__name__}: {exc}")
        return name, public_reason("not ready", exc)
    return name, "ok"


class Health(msgspec.Struct):
    """``/healthz``: the process answers."""

    status: str


class Readiness(msgspec.Struct, omit_defaults=True):
    """``/readyz``: ``ready`` or ``unavailable``, each check's result, the failing ones."""

    status: str
    checks: dict[str, str]
    failing: list[str] = msgspec.field(default_factory=list)


@get("/healthz", sync_to_thread=False, tags=["health"])
def healthz() -> Health:
    """The process is alive."""
    return Health(status="ok")


@get("/metrics", sync_to_thread=False, include_in_schema=False)
def metrics() -> Response[bytes]:
    """Prometheus exposition of this process."""
    return Response(
        prometheus_client.generate_latest(), media_type=prometheus_client.CONTENT_TYPE_LATEST
    )


@get("/readyz", media_type=MediaType.JSON, tags=["health"])
async def readyz(
    settings: SettingsDep, kafka_admin: KafkaAdmin, storage_probe: StorageProbe, sessions: Sessions
) -> Response[Readiness]:
    """200 when Kafka, MinIO and PostgreSQL all answer, else 503 naming the failing ones."""
    checks = {
        "kafka": _kafka(kafka_admin),  # one admin client per process, made at startup
        "minio": _minio(storage_probe, settings.storage.bucket),  # asks once, no retries
        "postgres": _postgres(sessions),
    }
    results = dict(await asyncio.gather(*(_run(name, check) for name, check in checks.items())))
    failing = sorted(name for name, result in results.items() if result != "ok")
    body = Readiness(status="ready" if not failing else "unavailable", checks=results)
    body.failing = failing
    code = HTTP_503_SERVICE_UNAVAILABLE if failing else HTTP_200_OK
    return Response(body, status_code=code)
