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


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _untyped(doc: dict[str, Any], schema: dict[str, Any]) -> str:
    """Why ``schema`` does not name its fields ("" when it does): a typed answer is a Struct
    (an object with properties) or a list of them."""
    resolved = _resolve(doc, schema)
    if resolved.get("type") == "array":
        return _untyped(doc, resolved.get("items", {}))
    if resolved.get("type") == "object" and resolved.get("properties"):
        return ""
    return f"not a typed object: {resolved or 'no schema'}"


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "put", "post", "delete", "patch"}
    return [
        (method.upper(), path, op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in methods
    ]


def test_every_json_answer_in_the_openapi_document_is_typed() -> None:
    doc = _schema()
    untyped = []
    for method, path, op in _operations(doc):
        for code, response in op.get("responses", {}).items():
            if not code.startswith("2"):
                continue
            for media_type, content in response.get("content", {}).items():
                if "json" not in media_type:
                    continue
                why = _untyped(doc, content.get("schema", {}))
                if why:
                    untyped.append(f"{method} {path} {code}: {why}")
    assert untyped == []


def test_the_openapi_document_holds_the_json_api_only() -> None:
    """Pages and HTMX fragments are for browsers: documented, they would read as JSON answers."""
    doc = _schema()
    answers: dict[str, set[str]] = {}
    for method, path, op in _operations(doc):
        for code, response in op.get("responses", {}).items():
            if code.startswith("2"):
                answers.setdefault(f"{method} {path}", set()).update(response.get("content", {}))
    assert len(answers) >= 15  # the walk found the API (a renamed key would make it vacuous)
    not_json = {name: kinds for name, kinds in answers.items() if kinds - {"application/json"}}
    assert not_json == {}
    for name in answers:
        assert name.split(" ")[1].startswith(("/api/", "/healthz", "/readyz")), name
