"""Typed requests and answers of the uploads API (msgspec Structs: the OpenAPI document shows
them)."""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_URLS_PER_REQUEST = 100

__all__ = ["PartUrl", "PartUrls", "PartsRequest", "UploadCreated", "UploadRequest", "UploadState"]


class UploadRequest(msgspec.Struct, frozen=True):
    """A file the browser is about to send; ``size`` is checked against the limit up front."""

    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    size: Annotated[int, msgspec.Meta(gt=0)]
    profile: str = ""


class UploadCreated(msgspec.Struct, frozen=True):
    """Where the browser stands: split the file into ``parts`` of ``part_size`` bytes."""

    upload_id: str
    part_size: int
    parts: int


class UploadState(msgspec.Struct, frozen=True):
    """An upload as the object store sees it: ``stored`` are the part numbers already held."""

    upload_id: str
    filename: str
    size: int
    part_size: int
    parts: int
    profile: str
    status: str
    stored: list[int]
    stored_bytes: int
    video_id: str


class PartsRequest(msgspec.Struct, frozen=True):
    """Part numbers the browser wants URLs for."""

    numbers: Annotated[list[int], msgspec.Meta(min_length=1, max_length=MAX_URLS_PER_REQUEST)]


class PartUrl(msgspec.Struct, frozen=True):
    """A presigned PUT for one part."""

    number: int
    url: str


class PartUrls(msgspec.Struct, frozen=True):
    """Presigned PUTs, valid for ``expires_in`` seconds."""

    urls: list[PartUrl]
    expires_in: int
