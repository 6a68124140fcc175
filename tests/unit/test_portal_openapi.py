"""The portal's OpenAPI document names the fields of its JSON answers (typed responses)."""

from __future__ import annotations

from typing import Any

from core.settings import Settings
from portal.app import create_app


def _schema() -> dict[str, Any]:
    # building the app connects to nothing: the services are reached in its lifespan
    return create_app(Settings()).openapi_schema.to_schema()


def _response_schema(doc: dict[str, Any], path: str) -> dict[str, Any]:
    content = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    schema: dict[str, Any] = content["schema"]
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_the_videos_api_schema_names_its_fields() -> None:
    doc = _schema()
    listing = _response_schema(doc, "/api/videos")
    assert {"total", "page", "pages", "videos"} <= set(listing["properties"])
    detail = _response_schema(doc, "/api/videos/{video_id}")
    fields = {"video_id", "filename", "status", "progress", "error", "renditions", "chunks"}
    assert fields <= set(detail["properties"])


def test_the_health_schema_names_its_fields() -> None:
    assert "status" in _response_schema(_schema(), "/healthz")["properties"]


def test_the_operations_api_schema_names_its_fields() -> None:
    doc = _schema()
    ops = _response_schema(doc, "/api/operations")
    assert {"partitions", "throughput", "workers", "dead_letters"} <= set(ops["properties"])
    replay = doc["paths"]["/api/dead-letters/{letter_id}/replay"]["post"]["responses"]["200"]
    schema = replay["content"]["application/json"]["schema"]
    letter = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    assert {"id", "source_topic", "error", "replayed_at", "replays"} <= set(letter["properties"])
