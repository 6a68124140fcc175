"""The event contract: the one place every message shape of every vidflow topic is written down.

Every event is a msgspec Struct tagged by ``type`` and carrying ``v`` (schema version), ``id``
(unique and deterministic, so a re-emitted event is recognisably the same), ``ts`` (seconds since
the epoch) and the field its topic is keyed by (``stream_id``, ``upload_id`` or ``video_id``;
``Event.partition_key`` returns it). Messages are JSON, so any Kafka client in any language can
produce them; ``docs/events.md`` shows examples.

Decoding never raises past :func:`decode`: a payload that is not JSON, has an unknown ``type``
or ``v``, misses a field or has one of the wrong type raises :class:`DecodeError` with a
message that says which, and :func:`try_decode` returns that error as a value so a consumer
can route it to ``vidflow.dlq`` (:func:`dead_letter`) instead of dying.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from typing import Annotated, ClassVar, Literal, TypeAlias

import msgspec

from core.errors import public_reason

__all__ = [
    "SCHEMA_VERSION",
    "ChunkRef",
    "ChunkStored",
    "DeadLetter",
    "DecodeError",
    "Event",
    "FileChanged",
    "FileClosed",
    "FileDeleted",
    "FileEvent",
    "IngestCompleted",
    "IngestRestarted",
    "IngestStarted",
    "JobCancelled",
    "JobCompleted",
    "JobEvent",
    "JobFailed",
    "Manifest",
    "Owner",
    "Probe",
    "ProbeCompleted",
    "Rendition",
    "RenditionCompleted",
    "RenditionFailed",
    "SourceRef",
    "StatusBase",
    "StatusEvent",
    "TranscodeCancel",
    "TranscodeRequested",
    "UnitProgress",
    "UnitStarted",
    "UploadCompleted",
    "UploadEvent",
    "VideoDelete",
    "VideoDeleted",
    "dead_letter",
    "decode",
    "encode",
    "event_id",
    "now",
    "refused",
    "try_decode",
]

SCHEMA_VERSION = 1
_ID_NAMESPACE = uuid.UUID("6f1d8c52-4a0e-4d3b-9a57-0c6e2b1f9a10")

# ---------------------------------------------------------------- bounds
# Every field is bounded here, at decode, so a message that decodes can always be stored by the
# portal's projection (``portal/models.py``: ids are VARCHAR(64), runs VARCHAR(128), counts and
# dimensions INTEGER, sizes BIGINT; PostgreSQL text refuses NUL). ``docs/events.md`` lists them.

INT32_MAX = 2**31 - 1  # an INTEGER column
SIZE_MAX = 2**50  # bytes: a petabyte, far past any video, well inside a BIGINT
OFFSET_MAX = 2**63 - 1  # a Kafka offset
TS_MAX = 253_402_300_799.0  # 9999-12-31: a timestamp past it is a corrupt one
ID_MAX, RUN_MAX, NAME_MAX, HOST_MAX, PATH_MAX = 64, 128, 255, 255, 4096
KEY_MAX = 1024  # an S3 object key
TEXT_MAX = 4096  # a reason or an error: users see a scrubbed line of it, the log keeps the rest
LIST_MAX = 64  # rungs, units, renditions, warnings
CHUNKS_MAX = 1_000_000  # chunks of one source (10 TiB at 10 MiB)
RAW_MAX = 4 * 1024 * 1024  # base64 in JSON, it stays under the producers' 8 MiB message.max.bytes

_ID = r"\A[A-Za-z0-9][A-Za-z0-9._:+@-]*\Z"  # no slash, space or control: safe in keys and URLs
_LINE = r"\A[^\x00-\x1f\x7f]*\Z"  # one line: no NUL, no C0 control, no DEL
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_LINES = r"\A[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*\Z"  # tabs and newlines allowed

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX, pattern=_ID)]
RunId = Annotated[str, msgspec.Meta(min_length=1, max_length=RUN_MAX, pattern=_ID)]
OptId = Annotated[
    str, msgspec.Meta(max_length=ID_MAX, pattern=r"\A(?:[A-Za-z0-9][A-Za-z0-9._:+@-]*)?\Z")
]
Bucket = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=_ID)]
Topic = Annotated[str, msgspec.Meta(max_length=249, pattern=r"\A[A-Za-z0-9._-]*\Z")]
Owner = Annotated[str, msgspec.Meta(max_length=ID_MAX, pattern=r"\A[^\x00-\x20\x7f]*\Z")]
Filename = Annotated[str, msgspec.Meta(max_length=NAME_MAX, pattern=_LINE)]
Host = Annotated[str, msgspec.Meta(max_length=HOST_MAX, pattern=_LINE)]
LocalPath = Annotated[str, msgspec.Meta(min_length=1, max_length=PATH_MAX, pattern=_LINE)]
StreamId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=HOST_MAX + 1 + PATH_MAX, pattern=_LINE)
]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=KEY_MAX, pattern=_LINE)]
OptKey = Annotated[str, msgspec.Meta(max_length=KEY_MAX, pattern=_LINE)]
Label = Annotated[str, msgspec.Meta(max_length=NAME_MAX, pattern=_LINE)]  # codec, format
Text = Annotated[str, msgspec.Meta(max_length=TEXT_MAX, pattern=_LINES)]
Stage = Annotated[str, msgspec.Meta(max_length=32, pattern=r"\A[A-Za-z0-9._-]*\Z")]
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
Rotation = Annotated[int, msgspec.Meta(ge=-360, le=360)]
Size = Annotated[int, msgspec.Meta(ge=0, le=SIZE_MAX)]
KafkaOffset = Annotated[int, msgspec.Meta(ge=0, le=OFFSET_MAX)]
Timestamp = Annotated[float, msgspec.Meta(ge=0, le=TS_MAX)]
Mtime = Annotated[float, msgspec.Meta(ge=-TS_MAX, le=TS_MAX)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0, le=1e9)]  # durations, fps, speed: finite
PhaseName = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"\A[a-z0-9_]+\Z")]
# where a unit's or a job's time went, seconds by phase (the transcode bench reads them)
Phases = Annotated[dict[PhaseName, NonNegFloat], msgspec.Meta(max_length=16)]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"\A[0-9a-f]{64}\Z")]
CompositeSha256 = Annotated[
    str, msgspec.Meta(max_length=80, pattern=r"\A[0-9a-f]{64}-[0-9]{1,15}\Z")
]
Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


def now() -> float:
    """Event timestamp: seconds since the epoch."""
    return time.time()


def event_id(*parts: object) -> str:
    """A deterministic id from the facts that make an event unique, so duplicates share it."""
    return str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(str(p) for p in parts)))


class DecodeError(ValueError):
    """A message that is not a valid vidflow event; the text says why."""


class Event(msgspec.Struct, kw_only=True, frozen=True, tag_field="type"):
    """Fields every event carries. Subclasses set ``topic`` and their key field."""

    topic: ClassVar[str]
    key_field: ClassVar[str]

    id: Id
    ts: Timestamp = msgspec.field(default_factory=now)
    v: int = SCHEMA_VERSION

    @property
    def partition_key(self) -> str:
        """The Kafka message key: the field this event's topic is partitioned by."""
        value: str = getattr(self, self.key_field)
        return value

    @property
    def type(self) -> str:
        """The event's ``type`` tag, as written on the wire."""
        tag: str = self.__struct_config__.tag  # type: ignore[assignment]
        return tag


# ---------------------------------------------------------------- shared value records


class Probe(msgspec.Struct, kw_only=True, frozen=True):
    """What ffprobe says of a source; dimensions are as stored, before rotation."""

    duration: NonNegFloat
    width: NonNegInt
    height: NonNegInt
    rotation: Rotation = 0
    fps: NonNegFloat = 0.0
    bit_rate: Size = 0
    video_codec: Label = ""
    audio_codec: Label | None = None
    has_audio: bool = False
    format_name: Label = ""
    variable_frame_rate: bool = False


class ChunkRef(msgspec.Struct, kw_only=True, frozen=True, array_like=False):
    """One chunk of a source, in order."""

    index: NonNegInt
    offset: Size
    size: Size
    sha256: Sha256Hex


class Manifest(msgspec.Struct, kw_only=True, frozen=True):
    """The ordered chunk list of a source, written to ``sources/{video}/manifest.json``.

    ``source_key`` is the object that holds the bytes: the video's own ``sources/{video}/source``,
    the upload it came from (``incoming/{upload}/source``, never copied), or, for a file whose
    SHA-256 another video's source already has, that source (no new bytes). Empty in a manifest
    of the earlier layout means ``sources/{video}/source``. Readers take it through
    ``ObjectLayout.source_of``, which accepts only keys the layout can derive."""

    video_id: Id
    size: Size
    chunks: Annotated[list[ChunkRef], msgspec.Meta(max_length=CHUNKS_MAX)]
    composite_sha256: CompositeSha256
    sha256: Sha256Hex
    source_key: OptKey = ""


class SourceRef(msgspec.Struct, kw_only=True, frozen=True):
    """Where a verified source lives."""

    bucket: Bucket
    key: Key
    size: Size
    sha256: Sha256Hex


class Rendition(msgspec.Struct, kw_only=True, frozen=True):
    """One rung of a finished ladder."""

    height: NonNegInt
    width: NonNegInt
    key: Key
    hls: OptKey  # "" for a conversion profile's one output (issue 12)
    bandwidth: Size = 0
    codecs: Label = ""


# ---------------------------------------------------------------- vidflow.file-events


class _FileEvent(Event, frozen=True, kw_only=True):
    topic: ClassVar[str] = "file-events"
    key_field: ClassVar[str] = "stream_id"

    stream_id: StreamId
    host: Host
    path: LocalPath


class FileChanged(_FileEvent, frozen=True, kw_only=True, tag="file.changed"):
    """A watched file has this size now (it may still be growing)."""

    size: Size
    mtime: Mtime
    inode: KafkaOffset = 0


class FileClosed(_FileEvent, frozen=True, kw_only=True, tag="file.closed"):
    """The writer closed the file: a hint, not the end (see ``dataflows/ingest/completion.py``)."""

    size: Size
    mtime: Mtime
    inode: KafkaOffset = 0


class FileDeleted(_FileEvent, frozen=True, kw_only=True, tag="file.deleted"):
    """The file is gone; an unfinished stream for it is abandoned."""


# ---------------------------------------------------------------- vidflow.uploads


class UploadCompleted(Event, frozen=True, kw_only=True, tag="upload.completed"):
    """An object landed in the bucket and should become a video."""

    topic: ClassVar[str] = "uploads"
    key_field: ClassVar[str] = "upload_id"

    upload_id: Id
    bucket: Bucket
    key: Key
    size: Size
    filename: Filename = ""
    owner: Owner = ""
    profile: Id = "default"


# ---------------------------------------------------------------- vidflow.jobs


class _JobEvent(Event, frozen=True, kw_only=True):
    topic: ClassVar[str] = "jobs"
    key_field: ClassVar[str] = "video_id"

    video_id: Id


class TranscodeRequested(_JobEvent, frozen=True, kw_only=True, tag="transcode.requested"):
    """Make the ladder of renditions for a verified source."""

    job_id: Id
    source: SourceRef
    probe: Probe
    profile: Id = "default"
    reason: Literal["ingest", "replay", "reprocess"] = "ingest"
    filename: Filename = ""
    owner: Owner = ""


class TranscodeCancel(_JobEvent, frozen=True, kw_only=True, tag="transcode.cancel"):
    """Stop the running job of a video (or only ``job_id`` when given).

    ``plan`` is set only by the transcode flow itself when a unit failed for good: it stops the
    job's other units in that one planning of the job, so replaying the topic never cancels a
    later run of the same job.
    """

    job_id: Id | None = None
    plan: Id | None = None


class VideoDelete(_JobEvent, frozen=True, kw_only=True, tag="video.delete"):
    """Remove a video: its running job is cancelled first, then every object of it goes
    (``requested_by``: the owner or admin who asked, for the log)."""

    requested_by: Owner = ""


# ---------------------------------------------------------------- vidflow.status


class StatusBase(Event, frozen=True, kw_only=True):
    """Fields of every status event; ``seq`` orders the events of one ``run`` (ingest or job)."""

    topic: ClassVar[str] = "status"
    key_field: ClassVar[str] = "video_id"

    video_id: Id
    run: RunId
    seq: NonNegInt


class IngestStarted(StatusBase, frozen=True, kw_only=True, tag="ingest.started"):
    """A new source began arriving."""

    origin: Literal["watch", "upload"]
    filename: Filename = ""
    owner: Owner = ""
    stream_id: Annotated[str, msgspec.Meta(max_length=HOST_MAX + 1 + PATH_MAX, pattern=_LINE)] = ""


class ChunkStored(StatusBase, frozen=True, kw_only=True, tag="chunk.stored"):
    """A chunk is durable in the object store (``deduplicated``: it already was)."""

    chunk: ChunkRef
    deduplicated: bool = False
    bytes_so_far: Size = 0


class IngestRestarted(StatusBase, frozen=True, kw_only=True, tag="ingest.restarted"):
    """The file shrank or was replaced: what was read is dropped and the stream starts over."""

    reason: Text


class IngestCompleted(StatusBase, frozen=True, kw_only=True, tag="ingest.completed"):
    """The source is composed and verified against its full SHA-256."""

    manifest: Manifest


class ProbeCompleted(StatusBase, frozen=True, kw_only=True, tag="probe.completed"):
    """ffprobe read the source."""

    probe: Probe


class UnitStarted(StatusBase, frozen=True, kw_only=True, tag="unit.started"):
    """An FFmpeg encode unit started (``heights``: the rungs it makes)."""

    job_id: Id
    unit: Id
    heights: Annotated[list[NonNegInt], msgspec.Meta(max_length=LIST_MAX)]
    attempt: NonNegInt = 1


class UnitProgress(StatusBase, frozen=True, kw_only=True, tag="unit.progress"):
    """How far an encode unit is."""

    job_id: Id
    unit: Id
    percent: Percent
    fps: NonNegFloat = 0.0
    speed: NonNegFloat = 0.0


class RenditionCompleted(StatusBase, frozen=True, kw_only=True, tag="rendition.completed"):
    """A rung is written (MP4 and HLS)."""

    job_id: Id
    rendition: Rendition
    # the unit's phases (queued, first_segment, encode, publish, publish_wall); {} before them
    phases: Phases = msgspec.field(default_factory=dict)


class RenditionFailed(StatusBase, frozen=True, kw_only=True, tag="rendition.failed"):
    """An encode unit failed; ``final`` when no retry follows."""

    job_id: Id
    height: NonNegInt
    error: Text
    attempt: NonNegInt = 1
    final: bool = False


class JobCompleted(StatusBase, frozen=True, kw_only=True, tag="job.completed"):
    """Every rung is done; the master playlist, poster and sprite are written."""

    job_id: Id
    renditions: Annotated[list[Rendition], msgspec.Meta(max_length=LIST_MAX)]
    master: OptKey
    poster: OptKey = ""
    sprite: OptKey = ""
    sprite_vtt: OptKey = ""
    # shown to users, never fatal
    warnings: Annotated[list[Text], msgspec.Meta(max_length=LIST_MAX)] = msgspec.field(
        default_factory=list
    )
    phases: Phases = msgspec.field(default_factory=dict)  # the job's own (previews)


class JobFailed(StatusBase, frozen=True, kw_only=True, tag="job.failed"):
    """The video cannot be processed; ``reason`` is for people."""

    reason: Text
    job_id: OptId = ""
    stage: Literal["ingest", "probe", "transcode"] = "transcode"


class JobCancelled(StatusBase, frozen=True, kw_only=True, tag="job.cancelled"):
    """The job was stopped on request and its partial outputs removed."""

    job_id: Id


class VideoDeleted(StatusBase, frozen=True, kw_only=True, tag="video.deleted"):
    """Every object of the video is gone; views drop it and keep it dropped (``run``: the
    id of the ``video.delete`` it answers)."""

    requested_by: Owner = ""


# ---------------------------------------------------------------- vidflow.dlq


class DeadLetter(Event, frozen=True, kw_only=True, tag="dead.letter"):
    """A message no flow could use, kept whole with the reason (``raw`` is base64 in JSON)."""

    topic: ClassVar[str] = "dlq"
    key_field: ClassVar[str] = "original_key"

    original_key: Annotated[str, msgspec.Meta(max_length=KEY_MAX, pattern=_LINE)]
    source_topic: Topic
    partition: NonNegInt
    offset: KafkaOffset
    raw: Annotated[bytes, msgspec.Meta(max_length=RAW_MAX)]
    error: Text
    stage: Stage = ""


FileEvent: TypeAlias = FileChanged | FileClosed | FileDeleted
UploadEvent: TypeAlias = UploadCompleted
JobEvent: TypeAlias = TranscodeRequested | TranscodeCancel | VideoDelete
StatusEvent: TypeAlias = (
    IngestStarted
    | ChunkStored
    | IngestRestarted
    | IngestCompleted
    | ProbeCompleted
    | UnitStarted
    | UnitProgress
    | RenditionCompleted
    | RenditionFailed
    | JobCompleted
    | JobFailed
    | JobCancelled
    | VideoDeleted
)
AnyEvent: TypeAlias = FileEvent | UploadEvent | JobEvent | StatusEvent | DeadLetter

_ALL_TYPES: tuple[type[Event], ...] = (
    FileChanged,
    FileClosed,
    FileDeleted,
    UploadCompleted,
    TranscodeRequested,
    TranscodeCancel,
    VideoDelete,
    IngestStarted,
    ChunkStored,
    IngestRestarted,
    IngestCompleted,
    ProbeCompleted,
    UnitStarted,
    UnitProgress,
    RenditionCompleted,
    RenditionFailed,
    JobCompleted,
    JobFailed,
    JobCancelled,
    VideoDeleted,
    DeadLetter,
)
TYPES: dict[str, type[Event]] = {t.__struct_config__.tag: t for t in _ALL_TYPES}  # type: ignore[misc]


class _Envelope(msgspec.Struct):
    """Just enough of a message to say which schema it claims."""

    type: str | None = None
    v: int | None = None


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_decoders: dict[str, msgspec.json.Decoder[AnyEvent]] = {
    tag: msgspec.json.Decoder(cls) for tag, cls in TYPES.items()
}
_encoder = msgspec.json.Encoder()


def encode(event: Event) -> bytes:
    """The event as JSON bytes, ready to produce.

    Raises :class:`DecodeError` for an event its consumers would refuse (a field past its
    bounds): msgspec checks bounds only when decoding, and a producer should learn of its
    mistake before the message is on the topic, not from a dead letter.
    """
    data = _encoder.encode(event)
    tag = event.type
    try:
        _decoders[tag].decode(data)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"refusing to encode an invalid {tag!r}: {exc}") from None
    return data


def decode(raw: bytes | bytearray | memoryview | None, expect: str | None = None) -> AnyEvent:
    """Parse a message; ``expect`` names the topic family (``"status"``) it must belong to.

    Raises :class:`DecodeError` whose text says what is wrong.
    """
    if raw is None:
        raise DecodeError("empty message (no value)")
    data = bytes(raw)
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"not a JSON object: {exc}") from None
    if envelope.type is None:
        raise DecodeError("missing field 'type'")
    cls = TYPES.get(envelope.type)
    if cls is None:
        raise DecodeError(f"unknown event type {envelope.type!r}")
    if envelope.v is not None and envelope.v != SCHEMA_VERSION:
        raise DecodeError(
            f"unsupported schema version v={envelope.v} for {envelope.type!r} "
            f"(this vidflow reads v={SCHEMA_VERSION})"
        )
    if expect is not None and cls.topic != expect:
        raise DecodeError(f"event type {envelope.type!r} does not belong on the {expect} topic")
    try:
        return _decoders[envelope.type].decode(data)
    except msgspec.ValidationError as exc:
        raise DecodeError(f"invalid {envelope.type!r}: {exc}") from None
    except msgspec.DecodeError as exc:  # pragma: no cover - envelope already parsed as JSON
        raise DecodeError(f"malformed {envelope.type!r}: {exc}") from None


def try_decode(
    raw: bytes | bytearray | memoryview | None, expect: str | None = None
) -> AnyEvent | DecodeError:
    """Like :func:`decode`, but the error is returned as a value: a consumer never raises."""
    try:
        return decode(raw, expect)
    except DecodeError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a consumer must survive any payload
        return DecodeError(f"undecodable message: {type(exc).__name__}: {exc}")


def dead_letter(
    *,
    raw: bytes | None,
    key: bytes | str | None,
    topic: str,
    partition: int,
    offset: int,
    error: str,
    stage: str = "decode",
    ts: float | None = None,
    about: str = "",
) -> DeadLetter:
    """The DLQ record for a message that could not be used, with its bytes kept whole.

    Whatever it is given, the record is within the contract's bounds (a dead letter that could
    not be written or stored would stop its writer): the key is made readable, the error
    public, the time clamped, and bytes past :data:`RAW_MAX` cut (the error says so). ``about``
    tells apart dead letters of one position (the id of an event refused before it had a
    position of its own, see :func:`refused`).
    """
    original_key = key.decode("utf-8", "replace") if isinstance(key, bytes) else (key or "")
    raw = raw or b""
    if len(raw) > RAW_MAX:
        error, raw = f"{error} (only the first {RAW_MAX} of {len(raw)} bytes kept)", raw[:RAW_MAX]
    when = now() if ts is None else ts
    return DeadLetter(
        id=event_id("dlq", topic, partition, offset, stage, *([about] if about else [])),
        # a key is any bytes: keep it readable and storable, whatever it was
        original_key=_CONTROL.sub("\ufffd", original_key)[:KEY_MAX],
        source_topic=topic,
        partition=max(partition, 0),
        offset=max(offset, 0),
        raw=raw,
        error=public_reason(error),  # a dead letter is shown in the portal
        stage=stage,
        ts=0.0 if math.isnan(when) else min(max(when, 0.0), TS_MAX),  # a log time may be anything
    )


def refused(event: Event, topic: str, error: DecodeError) -> DeadLetter:
    """The dead letter for an event a producer made but :func:`encode` refused (a field past its
    bounds): kept as JSON with the reason, so a flow goes on instead of failing on it again at
    every restart."""
    return dead_letter(
        raw=_encoder.encode(event), key=event.partition_key, topic=topic, partition=0, offset=0,
        error=str(error), stage="produce", about=str(event.id)[:ID_MAX * 4],
    )  # fmt: skip


Kind: TypeAlias = Literal["file-events", "uploads", "jobs", "status", "dlq"]
