"""What a ``transcode.requested`` may claim: only what the object layout agrees with.

``vidflow.jobs`` is a trust boundary. A request names a video and a source; the flow writes that
video's renditions, so a request with one video's id and another's source key would overwrite the
first video with the second's pictures. The source must therefore be the key the layout derives
for the video id (``sources/{video}/source``, optionally with a short extension), in the
configured bucket; the ids must be plain ids (they become object keys and local work
directories); the profile must exist. Anything else is a dead letter with a public reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Stream, operator

from core import events as ev
from core.errors import public_reason
from core.layout import ObjectLayout
from core.logs import get_logger
from dataflows.kafka_io import Inbound

__all__ = ["RequestRules", "Screened", "request_problem", "screen_requests"]

log = get_logger("vidflow.transcode")

# ids become object keys and directory names: no separators, no dots-only names
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
# what the layout allows after ``source``: nothing, or one short extension
_EXTENSION = re.compile(r"^(?:\.[A-Za-z0-9]{1,16})?$")


@dataclass(frozen=True)
class RequestRules:
    """What a request is checked against (picklable, so it can ride in a step's closure)."""

    bucket: str
    layout: ObjectLayout
    profiles: frozenset[str]


@dataclass(frozen=True)
class Screened:
    """The two streams :func:`screen_requests` makes."""

    oks: Stream[Inbound]
    errs: Stream[ev.DeadLetter]


def request_problem(request: ev.TranscodeRequested, rules: RequestRules) -> str | None:
    """Why ``request`` cannot be a job (a public reason), or ``None`` when it can."""
    if not _ID.match(request.video_id):
        return public_reason("refused: the video id is not a plain id")
    if not _ID.match(request.job_id):
        return public_reason("refused: the job id is not a plain id")
    if request.source.bucket != rules.bucket:
        return public_reason("refused: the source is not in the configured bucket")
    base = rules.layout.source(request.video_id)
    key = request.source.key
    if not (key.startswith(base) and _EXTENSION.match(key[len(base) :])):
        return public_reason(
            f"refused: the source key is not this video's source (expected {base})"
        )
    if request.profile not in rules.profiles:
        return public_reason(f"refused: unknown profile {request.profile[:64]!r}")
    return None


@operator
def screen_requests(step_id: str, up: Stream[Inbound], rules: RequestRules) -> Screened:
    """Split ``up`` into events the flow may act on and dead letters for requests it may not."""

    def check(item: Inbound) -> Inbound | ev.DeadLetter:
        event = item.event
        if not isinstance(event, ev.TranscodeRequested):
            return item
        problem = request_problem(event, rules)
        if problem is None:
            return item
        log.warning(
            "transcode request refused", video=event.video_id, job=event.job_id,
            bucket=event.source.bucket, key=event.source.key, reason=problem,
        )  # fmt: skip
        return ev.dead_letter(
            raw=item.raw or msgspec.json.encode(event), key=event.video_id, topic=item.topic,
            partition=item.partition, offset=item.offset, error=problem, stage="validate",
        )  # fmt: skip

    checked = op.map("check", up, check)
    split = op.branch("split", checked, lambda item: isinstance(item, Inbound))
    return Screened(oks=split.trues, errs=split.falses)  # type: ignore[arg-type]
