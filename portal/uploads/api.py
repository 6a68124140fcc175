"""Resumable uploads: the browser PUTs parts straight to the object store, the portal keeps state.

The portal never carries the bytes. It starts an S3 multipart upload under a key made from a
fresh id (``incoming/{id}/source``, never the file name), hands out a presigned URL per part,
and answers "which parts are stored" from ListParts, so a dropped connection or a reloaded page
resumes from what the store really holds. Completing checks the size against the declared one
and the limit, composes the object and announces it with ``upload.completed``.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.exceptions import (
    ClientException,
    NotFoundException,
    ServiceUnavailableException,
)
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_409_CONFLICT, HTTP_413_REQUEST_ENTITY_TOO_LARGE
from minio import Minio
from minio.error import S3Error
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from connectors import multipart
from connectors.kafka import deliver
from connectors.storage import make_client
from core.errors import public_reason
from core.ids import upload_completed, upload_video_id
from core.layout import ObjectLayout
from core.logs import get_logger
from core.settings import Settings, StorageSettings
from portal.auth import requires_uploader, viewer_of
from portal.deps import KafkaProducer, Sessions, SettingsDep
from portal.filenames import InvalidFilename, check_upload_filename, display_filename
from portal.models import Upload
from portal.uploads.schemas import (
    PartsRequest,
    PartUrl,
    PartUrls,
    UploadCreated,
    UploadRequest,
    UploadState,
)

__all__ = ["UploadApi", "storage_client"]

PART_URL_TTL = timedelta(hours=1)
CLAIM_TTL = timedelta(minutes=10)
# User metadata on the upload's object naming who sent it (S3 ``x-amz-meta-vidflow-owner``):
# the ingest flow takes the owner from here, the store's record, not from an event's field.
OWNER_METADATA = "vidflow-owner"
log = get_logger("vidflow.portal.uploads")


@cache
def storage_client(storage: StorageSettings) -> Minio:
    """One client (and HTTP pool) per process; presigning is local, the rest goes to threads."""
    return make_client(storage)


def _part_count(row: Upload) -> int:
    return -(-row.size // row.part_size)


def _expected_size(row: Upload, number: int) -> int:
    """Every part is ``part_size`` but the last, which holds the rest."""
    if number < _part_count(row):
        return row.part_size
    return row.size - (_part_count(row) - 1) * row.part_size


async def _owned(session: AsyncSession, request: Request[Any, Any, Any], upload_id: str) -> Upload:
    """The upload if it exists and this user may see it (admins see all); 404 otherwise."""
    row = await session.get(Upload, upload_id)
    if row is None or not viewer_of(request).sees(row.owner):
        raise NotFoundException(f"no upload {upload_id}")
    return row


def _stale(row: Upload) -> bool:
    """A ``composing`` claim older than ``CLAIM_TTL``: its completion died on the way."""
    return row.claimed_at is None or datetime.now(UTC) - row.claimed_at > CLAIM_TTL


async def _set_status(
    maker: async_sessionmaker[AsyncSession],
    row: Upload,
    status: str,
    claim: datetime | None,
    **values: Any,
) -> None:
    """Commit ``status`` (and ``values``) for ``row``; with ``claim``, only if the claim is still
    ours (a stale claim may have been taken over: then the other completion decides)."""
    query = update(Upload).where(Upload.id == row.id)
    if claim is not None:
        query = query.where(Upload.status == "composing", Upload.claimed_at == claim)
    async with maker() as session, session.begin():
        result = await session.execute(query.values(status=status, **values))
    if claim is not None and not getattr(result, "rowcount", 1):
        raise ClientException("upload was completed by another request", status_code=409)
    row.status = status
    for name, value in values.items():
        setattr(row, name, value)


async def _stored(
    settings: Settings, row: Upload, *, force: bool = False
) -> list[multipart.StoredPart]:
    if row.status != "open" and not force:
        return []
    client = storage_client(settings.storage)
    bucket = settings.storage.bucket
    return await asyncio.to_thread(multipart.list_stored, client, bucket, row.key, row.s3_upload_id)


def _state(row: Upload, stored: list[multipart.StoredPart]) -> UploadState:
    return UploadState(
        upload_id=row.id,
        filename=display_filename(row.filename),
        size=row.size,
        part_size=row.part_size,
        parts=_part_count(row),
        profile=row.profile,
        status=row.status,
        stored=[p.number for p in stored],
        stored_bytes=sum(p.size for p in stored),
        video_id=row.video_id,
    )


def _too_large(size: int, limit: int) -> ClientException:
    return ClientException(
        f"{size} bytes is over the upload limit of {limit} bytes",
        status_code=HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


class _Refused(ClientException):
    """More bytes than declared or allowed: the upload is dropped, not resumable."""

    status_code = HTTP_413_REQUEST_ENTITY_TOO_LARGE


class UploadApi(Controller):
    """``/api/uploads``: create, resume (stored parts), presign parts, complete, abort."""

    path = "/api/uploads"
    guards = [requires_uploader]  # noqa: RUF012 - Litestar's declared attribute
    tags = ["uploads"]  # noqa: RUF012

    @post("/")
    async def create(
        self,
        request: Request[Any, Any, Any],
        settings: SettingsDep,
        sessions: Sessions,
        data: JSONBody[UploadRequest],
    ) -> UploadCreated:
        """Start an upload; a declared size over the limit, an unknown profile or a file name
        that cannot be kept (a NUL, a control character, too long) is refused before anything
        exists in the object store. The object records its sender as user metadata."""
        limit = settings.portal.max_upload_bytes
        if data.size > limit:
            raise _too_large(data.size, limit)
        try:
            filename = check_upload_filename(data.filename)
        except InvalidFilename as exc:
            raise ClientException(str(exc)) from exc
        profile = data.profile or settings.transcode.default_profile
        if profile not in settings.transcode.profiles:
            raise ClientException(f"unknown profile {profile!r}")
        owner = viewer_of(request).username
        upload_id = uuid.uuid4().hex
        key = ObjectLayout(settings.storage).incoming(upload_id)
        client = storage_client(settings.storage)
        s3_id = await asyncio.to_thread(
            multipart.create,
            client,
            settings.storage.bucket,
            key,
            metadata={OWNER_METADATA: owner},
        )
        row = Upload(
            id=upload_id,
            owner=owner,
            filename=filename,
            size=data.size,
            part_size=multipart.part_size_for(data.size),
            key=key,
            s3_upload_id=s3_id,
            profile=profile,
            status="open",
        )
        async with sessions() as session, session.begin():
            session.add(row)
        return UploadCreated(upload_id=upload_id, part_size=row.part_size, parts=_part_count(row))

    @get("/{upload_id:str}")
    async def read(
        self,
        request: Request[Any, Any, Any],
        settings: SettingsDep,
        sessions: Sessions,
        upload_id: FromPath[str],
    ) -> UploadState:
        """The upload and the parts the object store already holds: where a resume starts."""
        async with sessions() as session:
            row = await _owned(session, request, upload_id)
        return _state(row, await _stored(settings, row))

    @post("/{upload_id:str}/parts", status_code=200)
    async def presign(
        self,
        request: Request[Any, Any, Any],
        settings: SettingsDep,
        sessions: Sessions,
        upload_id: FromPath[str],
        data: JSONBody[PartsRequest],
    ) -> PartUrls:
        """A presigned PUT URL for each asked part number."""
        async with sessions() as session:
            row = await _owned(session, request, upload_id)
        if row.status != "open":
            raise ClientException(f"upload is {row.status}", status_code=HTTP_409_CONFLICT)
        count = _part_count(row)
        if any(n < 1 or n > count for n in data.numbers):
            raise ClientException(f"part numbers run from 1 to {count}")
        client = storage_client(settings.storage)
        urls = [
            PartUrl(
                number=n,
                url=multipart.presign_part(
                    client, settings.storage.bucket, row.key, row.s3_upload_id, n, PART_URL_TTL
                ),
            )
            for n in sorted(set(data.numbers))
        ]
        return PartUrls(urls=urls, expires_in=int(PART_URL_TTL.total_seconds()))

    @post("/{upload_id:str}/complete", status_code=200)
    async def complete(
        self,
        request: Request[Any, Any, Any],
        settings: SettingsDep,
        sessions: Sessions,
        producer: KafkaProducer,
        upload_id: FromPath[str],
    ) -> UploadState:
        """Check every part is there with the declared size, compose, and announce the video.

        More bytes than declared (or than the limit) abort the upload; a missing or short part
        leaves it open so the browser can send that part again. Completing twice is harmless.

        The row is claimed (status ``composing``) and committed first; the object store and
        Kafka are then worked with no row lock and no pooled connection held, and each outcome
        is committed on its own. A claim left by a crash goes stale after ``CLAIM_TTL``.
        """
        maker = sessions
        async with maker() as session, session.begin():
            row = await _owned(session, request, upload_id)
            await session.refresh(row, with_for_update=True)  # one claim at a time
            if row.status == "completed":
                return _state(row, [])
            if row.status == "composing" and not _stale(row):
                raise ClientException("upload is being completed", status_code=HTTP_409_CONFLICT)
            if row.status not in ("open", "composed", "composing"):
                raise ClientException(f"upload is {row.status}", status_code=HTTP_409_CONFLICT)
            if row.status != "composed":
                row.status, row.claimed_at = "composing", datetime.now(UTC)
        if row.status == "composing":
            claim = row.claimed_at
            try:
                await self._verify_and_compose(settings, row)
            except _Refused:
                await _set_status(maker, row, "refused", claim)
                raise
            except Exception:
                await _set_status(maker, row, "open", claim)  # parts missing, store down: retry
                raise
            await _set_status(maker, row, "composed", claim)
        try:
            event = upload_completed(
                row.id, bucket=settings.storage.bucket, key=row.key, size=row.size,
                filename=row.filename, owner=row.owner, profile=row.profile,
            )  # fmt: skip
            # the app's one producer (made at start-up), never one per request
            await asyncio.to_thread(deliver, producer, settings.kafka.topic_uploads, event)
            video_id = upload_video_id(row.id)
        except Exception as exc:  # Kafka down: the object stays, completing again announces
            detail = f"{type(exc).__name__}: {exc}"
            log.warning("upload not announced", upload_id=row.id, error=detail)
            reason = public_reason("could not announce the upload", exc)
            raise ServiceUnavailableException(reason) from exc
        await _set_status(maker, row, "completed", None, video_id=video_id)
        return _state(row, [])

    @classmethod
    async def _verify_and_compose(cls, settings: Settings, row: Upload) -> None:
        """Compose the parts if they are all there with their sizes; raise if not."""
        try:
            stored = await _stored(settings, row, force=True)
        except S3Error as exc:
            if exc.code != "NoSuchUpload" or not await cls._already_composed(settings, row):
                raise
            return  # a completion that crashed after composing: the object is there
        total = sum(p.size for p in stored)
        if total > row.size or total > settings.portal.max_upload_bytes:
            await cls._abort(settings, row)
            raise _Refused(
                f"{total} bytes stored for a declared {row.size} bytes "
                f"(limit {settings.portal.max_upload_bytes}): upload refused"
            )
        have = {p.number: p.size for p in stored}
        count = _part_count(row)
        wrong = [n for n in range(1, count + 1) if have.get(n) != _expected_size(row, n)]
        if wrong:
            raise ClientException(
                "parts missing or of the wrong size",
                status_code=HTTP_409_CONFLICT,
                extra={"parts": wrong},
            )
        await cls._compose(settings, row, stored)

    @staticmethod
    async def _already_composed(settings: Settings, row: Upload) -> bool:
        client = storage_client(settings.storage)
        try:
            stat = await asyncio.to_thread(client.stat_object, settings.storage.bucket, row.key)
        except S3Error:
            return False
        return stat.size == row.size

    @staticmethod
    async def _compose(settings: Settings, row: Upload, stored: list[multipart.StoredPart]) -> None:
        """Compose on the store, then check the object itself (the truth) against the size."""
        client = storage_client(settings.storage)
        bucket = settings.storage.bucket
        await asyncio.to_thread(
            multipart.complete, client, bucket, row.key, row.s3_upload_id, stored
        )
        stat = await asyncio.to_thread(client.stat_object, bucket, row.key)
        if stat.size != row.size:
            await asyncio.to_thread(client.remove_object, bucket, row.key)
            row.status = "refused"
            raise _Refused(f"composed object has {stat.size} bytes, {row.size} were declared")

    @staticmethod
    async def _abort(settings: Settings, row: Upload) -> None:
        client = storage_client(settings.storage)
        bucket = settings.storage.bucket
        await asyncio.to_thread(multipart.abort, client, bucket, row.key, row.s3_upload_id)
        row.status = "refused"

    @delete("/{upload_id:str}")
    async def abort(
        self,
        request: Request[Any, Any, Any],
        settings: SettingsDep,
        sessions: Sessions,
        upload_id: FromPath[str],
    ) -> None:
        """Give up an open upload; the store drops its parts."""
        async with sessions() as session, session.begin():
            row = await _owned(session, request, upload_id)
            if row.status != "open":
                raise ClientException(f"upload is {row.status}", status_code=HTTP_409_CONFLICT)
            await self._abort(settings, row)
            row.status = "aborted"
