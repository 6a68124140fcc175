"""One typed settings module: every knob of vidflow, in groups of documented fields.

A field ``kafka.bootstrap`` is read from ``VIDFLOW_KAFKA_BOOTSTRAP``; top-level fields drop the
group (``VIDFLOW_ENV``). Defaults run the local stack started by ``vidflow stack up``; with
``VIDFLOW_ENV=production`` any credential still at its default is refused at load time. The
groups live here; reading them from the environment is ``core.settings_env``, the credential
type ``core.secret``, the webhook sender's group ``core.settings_webhooks``. All are importable
from here, as every caller does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec

# Profiles are parsed here, at load; the module moves into the core package later.
from core.profiles import Profile, load_profiles
from core.secret import Secret
from core.settings_env import SettingsError, environ_of, refuse_default_credentials, settings_from
from core.settings_webhooks import WebhookSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = [
    "TRANSCODE_CLUSTER_PORTS",
    "IngestSettings",
    "KafkaSettings",
    "MetricsSettings",
    "PortalSettings",
    "PostgresSettings",
    "Secret",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "TranscodeSettings",
    "WebhookSettings",
    "get_settings",
    "load_settings",
    "settings_environ",
]

MiB = 1024 * 1024
# Ports kept free above VIDFLOW_METRICS_TRANSCODE_PORT for the processes of a transcode cluster.
TRANSCODE_CLUSTER_PORTS = 8


class KafkaSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Where Kafka is, who vidflow is to it, and how vidflow's topics are laid out.

    The broker is a trust boundary: with ``security_protocol`` ``SASL_PLAINTEXT`` or
    ``SASL_SSL`` every client logs in as ``username`` (SCRAM by default) and the broker's ACLs
    decide what it may do. ``vidflow stack`` makes one principal per component and gives each
    process its own; empty credentials mean a broker without authentication.
    """

    bootstrap: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    username: str = ""
    password: Secret = Secret("")
    partitions: int = 3
    replication: int = 1
    topic_file_events: str = "vidflow.file-events"
    topic_uploads: str = "vidflow.uploads"
    topic_jobs: str = "vidflow.jobs"
    topic_status: str = "vidflow.status"
    topic_dlq: str = "vidflow.dlq"

    def topics(self) -> list[str]:
        """Every topic vidflow reads or writes, in pipeline order."""
        return [
            self.topic_file_events,
            self.topic_uploads,
            self.topic_jobs,
            self.topic_status,
            self.topic_dlq,
        ]

    def __post_init__(self) -> None:
        # Credentials that would be silently ignored, or a login without them, are mistakes
        # better named at start-up than found as "connection refused" in a flow's log.
        if self.security_protocol == "PLAINTEXT" and self.username:
            raise SettingsError(
                "VIDFLOW_KAFKA_USERNAME is set but VIDFLOW_KAFKA_SECURITY_PROTOCOL is PLAINTEXT "
                "(no login): set it to SASL_PLAINTEXT or SASL_SSL."
            )
        if self.security_protocol != "PLAINTEXT" and not (self.username and self.password):
            raise SettingsError(
                f"VIDFLOW_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "VIDFLOW_KAFKA_USERNAME and VIDFLOW_KAFKA_PASSWORD "
                "(`vidflow stack env` prints them for the local stack)."
            )


class StorageSettings(msgspec.Struct, kw_only=True, frozen=True):
    """An S3 endpoint (MinIO locally) and the key prefixes of vidflow's object layout."""

    endpoint: str = "127.0.0.1:19000"
    access_key: Secret = Secret("vidflow")
    secret_key: Secret = Secret("vidflow-secret")
    bucket: str = "vidflow"
    secure: bool = False
    region: str = "us-east-1"
    prefix_chunks: str = "chunks"
    prefix_sources: str = "sources"
    prefix_renditions: str = "renditions"
    prefix_hls: str = "hls"
    prefix_thumbs: str = "thumbs"
    prefix_incoming: str = "incoming"

    @property
    def url(self) -> str:
        """The endpoint as a URL, for clients that want one."""
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"


class PostgresSettings(msgspec.Struct, kw_only=True, frozen=True):
    """The PostgreSQL server holding the portal's projection."""

    host: str = "127.0.0.1"
    port: int = 15432
    user: str = "vidflow"
    password: Secret = Secret("vidflow")
    database: str = "vidflow"

    @property
    def url(self) -> URL:
        """SQLAlchemy URL using the psycopg 3 driver: it escapes the password for the URL and
        masks it when printed (``render_as_string(hide_password=False)`` is the one way out)."""
        from sqlalchemy.engine import URL  # the watcher and the flows never need SQLAlchemy

        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password.reveal(),
            host=self.host,
            port=self.port,
            database=self.database,
        )

    @property
    def dsn(self) -> str:
        """libpq connection string, for psycopg used directly (LISTEN/NOTIFY). It holds the
        password (quoted as libpq wants): hand it to psycopg, never to a log."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password.reveal(),
            dbname=self.database,
        )


class IngestSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How files become chunked, verified sources."""

    chunk_size: int = 10 * MiB
    stream_timeout: float = 30.0
    # A close is a hint, not the end (a logger or a resumed transfer appends in separate opens):
    # with close_is_final it ends the stream only if the file is then a complete video and no
    # write came for close_grace seconds; otherwise the stream timeout does.
    close_is_final: bool = True
    close_grace: float = 2.0
    ignore_patterns: tuple[str, ...] = (".*", "*~", "*.tmp", "*.part", "*.swp", "*.crdownload")
    host: str = ""
    # File events are honoured only for regular files under these directories (links resolved);
    # empty means the local run's watch directory, ``VIDFLOW_HOME/watch`` (see ``roots``).
    watch_roots: tuple[str, ...] = ()
    # A file or upload declaring more bytes than this is refused (a size is untrusted input).
    max_file_bytes: int = 1024**4
    # The owner of an upload whose object carries no owner metadata (an outside producer's).
    producer_owner: str = "producer"

    def roots(self, home: Path) -> tuple[Path, ...]:
        """The watched roots as given (or ``home/watch``), not yet resolved."""
        return tuple(Path(r) for r in self.watch_roots) or (Path(home) / "watch",)

    def __post_init__(self) -> None:
        if self.max_file_bytes <= 0:
            raise SettingsError("VIDFLOW_INGEST_MAX_FILE_BYTES must be a positive number of bytes.")
        # S3 server-side compose needs every part but the last to be >= 5 MiB.
        if self.chunk_size < 5 * MiB:
            raise SettingsError(
                f"VIDFLOW_INGEST_CHUNK_SIZE={self.chunk_size} is below the object store's "
                f"5 MiB compose minimum ({5 * MiB}); raise it."
            )
        if self.close_grace < 0:
            raise SettingsError("VIDFLOW_INGEST_CLOSE_GRACE must be zero or more seconds.")
        if self.stream_timeout <= 0:
            raise SettingsError(
                "VIDFLOW_INGEST_STREAM_TIMEOUT must be a positive number of seconds."
            )


class TranscodeSettings(msgspec.Struct, kw_only=True, frozen=True):
    """How jobs become renditions."""

    max_encodes_per_worker: int = 1
    # A video's first-playable unit (the one making its lowest rung) runs beside the bulk
    # encodes, in slots of its own, until a video track of it is live; the bulk encodes (and it,
    # from then on) run at this niceness so it gets the CPU first (and the portal, Kafka and
    # MinIO stay responsive under a long ladder).
    early_encodes_per_worker: int = 1
    bulk_nice: int = 10
    retries: int = 3
    retry_backoff: float = 2.0
    stall_timeout: float = 60.0
    # A publishing or previews child (remux, uploads, poster, sprite) still running after this
    # many seconds is hung: killed, and the unit retried like a transient failure.
    child_timeout: float = 900.0
    # How long a finished video's tombstone (its last job id) is kept to drop a replayed
    # duplicate request before the step's state for the video is discarded.
    state_ttl: float = 3600.0
    unit_mode: Literal["auto", "rung", "ladder"] = "auto"
    default_profile: str = "default"
    profiles_json: str = ""
    preset: str = "veryfast"
    poll_interval: float = 0.5
    # While a step waits on what a viewer or the job's end waits on (a unit's first fragment,
    # a publishing, master or previews child's result) it looks this often instead (issue 12).
    urgent_poll_interval: float = 0.1
    # Renditions shorter than the probed source by more than max(1 s, 3 %) (a truncated
    # source): "warn" completes the job with a warning users see, "fail" fails it.
    truncated: Literal["warn", "fail"] = "warn"

    def __post_init__(self) -> None:
        if self.max_encodes_per_worker < 1 or self.early_encodes_per_worker < 1:
            raise SettingsError(
                "VIDFLOW_TRANSCODE_MAX_ENCODES_PER_WORKER and _EARLY_ENCODES_PER_WORKER must be "
                "at least 1 (no unit would ever start)."
            )
        if not 0 <= self.bulk_nice <= 19:
            raise SettingsError("VIDFLOW_TRANSCODE_BULK_NICE must be a niceness from 0 to 19.")
        _parsed_profiles(self.profiles_json)  # a bad ladder stops the process at load

    @property
    def profiles(self) -> Mapping[str, Profile]:
        """Every profile by name: the built-in ones plus ``profiles_json``, parsed once."""
        return _parsed_profiles(self.profiles_json)


@cache
def _parsed_profiles(raw_json: str) -> Mapping[str, Profile]:
    """``profiles_json`` parsed, once per distinct text, read-only so callers share it."""
    try:
        return MappingProxyType(load_profiles(raw_json))
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise SettingsError(
            f"VIDFLOW_TRANSCODE_PROFILES_JSON is not a valid ladder: {exc}"
        ) from None


class PortalSettings(msgspec.Struct, kw_only=True, frozen=True):
    """The web portal."""

    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: Secret = Secret("vidflow-development-secret-key-change-me-0123456789")
    max_upload_bytes: int = 1024 * MiB
    admin_user: str = "admin"
    admin_password: Secret = Secret("vidflow-admin")
    # Served over HTTPS (directly or behind a TLS proxy): session and CSRF cookies get Secure.
    tls: bool = False
    # Addresses or networks (comma-separated: "10.0.0.5,10.1.0.0/16") of reverse proxies whose
    # X-Forwarded-For / Forwarded headers are believed. Empty: nobody's, the peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    # Downloads joined with their audio by FFmpeg at once; one more is a 503 with Retry-After
    download_remuxes: Annotated[int, msgspec.Meta(ge=1)] = 4


class MetricsSettings(msgspec.Struct, kw_only=True, frozen=True):
    """Where each process exposes Prometheus metrics, and Prometheus itself. The portal serves
    its own ``/metrics`` on :attr:`PortalSettings.port`: that port is not repeated here."""

    ingest_port: int = 19101
    # process i of a transcode cluster serves on transcode_port + i: a block of its own
    transcode_port: int = 19110
    watcher_port: int = 19103
    projector_port: int = 19104
    webhooks_port: int = 19105
    prometheus_port: int = 19090


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """All of vidflow's configuration."""

    env: Literal["development", "test", "production"] = "development"
    home: Path = Path(".vidflow")
    cache_dir: Path = Path.home() / ".cache" / "vidflow"
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    postgres: PostgresSettings = msgspec.field(default_factory=PostgresSettings)
    ingest: IngestSettings = msgspec.field(default_factory=IngestSettings)
    transcode: TranscodeSettings = msgspec.field(default_factory=TranscodeSettings)
    portal: PortalSettings = msgspec.field(default_factory=PortalSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)


_GROUPS: dict[str, type[msgspec.Struct]] = {
    "kafka": KafkaSettings,
    "storage": StorageSettings,
    "postgres": PostgresSettings,
    "ingest": IngestSettings,
    "transcode": TranscodeSettings,
    "portal": PortalSettings,
    "metrics": MetricsSettings,
    "webhooks": WebhookSettings,
}


def _refuse_shared_ports(settings: Settings) -> None:
    """Two of vidflow's processes told to listen on one port: the second dies at start-up, or
    Prometheus scrapes the wrong one. Refused at load, naming both variables (0 disables)."""
    m = settings.metrics
    single = {
        "VIDFLOW_METRICS_INGEST_PORT": m.ingest_port,
        "VIDFLOW_METRICS_WATCHER_PORT": m.watcher_port,
        "VIDFLOW_METRICS_PROJECTOR_PORT": m.projector_port,
        "VIDFLOW_METRICS_WEBHOOKS_PORT": m.webhooks_port,
        "VIDFLOW_METRICS_PROMETHEUS_PORT": m.prometheus_port,
        "VIDFLOW_PORTAL_PORT": settings.portal.port,
    }
    claims = [(name, {port}) for name, port in single.items() if port > 0]
    if m.transcode_port > 0:
        block = set(range(m.transcode_port, m.transcode_port + TRANSCODE_CLUSTER_PORTS))
        claims.append(("VIDFLOW_METRICS_TRANSCODE_PORT", block))
    for i, (name, ports) in enumerate(claims):
        for other, other_ports in claims[i + 1 :]:
            if ports & other_ports:
                first, second = sorted((name, other))
                raise SettingsError(
                    f"{first} and {second} claim the same port {min(ports & other_ports)} "
                    f"(the transcode port keeps {TRANSCODE_CLUSTER_PORTS} above it for a "
                    "cluster's processes); give each its own."
                )


def settings_environ(settings: Settings) -> dict[str, str]:
    """The environment variables that make :func:`load_settings` give back ``settings``.

    Used to hand exactly these settings to a child process (a flow, the portal).
    """
    return environ_of(settings, _GROUPS)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping (``os.environ`` by default)."""
    settings = settings_from(os.environ if environ is None else environ, Settings, _GROUPS)
    _refuse_shared_ports(settings)
    if settings.env == "production":
        refuse_default_credentials(settings, _GROUPS)
    return settings


@cache
def get_settings() -> Settings:
    """Settings of this process, read once from its environment."""
    return load_settings()
