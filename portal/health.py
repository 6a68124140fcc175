"""``/readyz``: whether the portal can do its work, i.e. Kafka, MinIO and PostgreSQL answer.

``/healthz`` says the process lives; this says its dependencies do, so a load balancer stops
sending traffic while one is down. Every check runs at once with its own short timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from confluent_kafka.admin import AdminClient
from litestar import MediaType, Response, get
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from minio import Minio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import public_reason
from core.logs import get_logger
from core.settings import Settings

__all__ = ["readyz"]

TIMEOUT = 3.0
log = get_logger("vidflow.portal.health")


async def _kafka(settings: Settings, state: State) -> None:
    admin: AdminClient = state.kafka_admin  # one per process, made at startup
    metadata = await asyncio.to_thread(admin.list_topics, timeout=TIMEOUT)
    if not metadata.brokers:
        raise ConnectionError("no broker in metadata")


async def _minio(settings: Settings, state: State) -> None:
    client: Minio = state.storage
    if not await asyncio.to_thread(client.bucket_exists, settings.storage.bucket):
        raise LookupError(f"bucket {settings.storage.bucket} is missing")


async def _postgres(_: Settings, state: State) -> None:
    maker: async_sessionmaker[AsyncSession] = state.sessions
    async with maker() as session:
        await session.execute(text("SELECT 1"))


CHECKS: dict[str, Callable[[Settings, State], Awaitable[None]]] = {
    "kafka": _kafka,
    "minio": _minio,
    "postgres": _postgres,
}


async def _run(name: str, settings: Settings, state: State) -> tuple[str, str]:
    try:
        await asyncio.wait_for(CHECKS[name](settings, state), TIMEOUT + 1)
    except TimeoutError:
        return name, f"timed out after {TIMEOUT + 1:.0f}s"
    except Exception as exc:  # noqa: BLE001 - any failure is the answer, not a crash
        # /readyz is open to anyone (probes): a short reason, the detail in the log
        log.warning("readiness check failed", check=name, error=f"{type(exc).__name__}: {exc}")
        return name, public_reason("not ready", exc)
    return name, "ok"


@get("/readyz", media_type=MediaType.JSON, tags=["health"])
async def readyz(state: State) -> Response[dict[str, object]]:
    """200 when Kafka, MinIO and PostgreSQL all answer, else 503 naming the failing ones."""
    settings: Settings = state.settings
    results = dict(await asyncio.gather(*(_run(name, settings, state) for name in CHECKS)))
    failing = sorted(name for name, result in results.items() if result != "ok")
    body: dict[str, object] = {"status": "ready" if not failing else "unavailable"}
    body["checks"] = results
    if failing:
        body["failing"] = failing
    code = HTTP_503_SERVICE_UNAVAILABLE if failing else HTTP_200_OK
    return Response(body, status_code=code)
