"""S3 object storage (MinIO locally) through the minio client, speaking plain S3 only."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.error import S3Error
from minio.lifecycleconfig import AbortIncompleteMultipartUpload, LifecycleConfig, Rule
from urllib3.exceptions import HTTPError

from connectors.retry import RetryPolicy, ServiceUnavailable, retry_call, wait_until
from core.layout import ObjectLayout
from core.logs import get_logger
from core.settings import StorageSettings

__all__ = [
    "INCOMING_RULE_ID",
    "INCOMPLETE_UPLOAD_DAYS",
    "MISSING_CODES",
    "STORAGE_OUTAGE",
    "TRANSIENT_S3_CODES",
    "close_client",
    "ensure_bucket",
    "ensure_incoming_lifecycle",
    "incoming_upload_rule",
    "is_transient",
    "make_client",
    "object_exists",
    "read_object",
    "retry_storage",
    "wait_for_storage",
]

log = get_logger("vidflow.storage")
INCOMING_RULE_ID = "abort-incomplete-incoming-uploads"
INCOMPLETE_UPLOAD_DAYS = 1
_LIFECYCLE_REFUSED: set[str] = set()
T = TypeVar("T")

# A store that is away (restarting, network down, busy) is waited for this long, with backoff.
STORAGE_OUTAGE = RetryPolicy(budget=300.0, first_delay=0.5, max_delay=10.0)
# What the store answers while it is busy or not ready yet: worth waiting out, unlike an answer
# about the request itself (NoSuchKey, AccessDenied...), which is final.
TRANSIENT_S3_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "XMinioServerNotInitialized"}
)


def make_client(s: StorageSettings) -> Minio:
    """A client whose HTTP pool retries connection errors with backoff (the server may restart)."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5.0, read=120.0),
        maxsize=16,
        retries=urllib3.Retry(total=5, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]),
    )
    return _client(s, http)


def make_probe_client(s: StorageSettings, timeout: float) -> Minio:
    """A client that asks once, within ``timeout``: a readiness probe answers what the store
    says now. Riding out an outage, as :func:`make_client` does, held a thread for about 15 s
    per probe after the probe had answered."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout), maxsize=2, retries=False
    )
    return _client(s, http)


def _client(s: StorageSettings, http: urllib3.PoolManager) -> Minio:
    """A client of the store ``s`` names, over the HTTP pool ``http`` (its retries and timeouts)."""
    return Minio(
        s.endpoint,
        access_key=s.access_key.reveal(),
        secret_key=s.secret_key.reveal(),
        secure=s.secure,
        region=s.region,
        http_client=http,
    )


def close_client(client: Minio) -> None:
    """Close the client's pooled connections (the client has no close of its own)."""
    client._http.clear()


def ensure_bucket(client: Minio, storage: StorageSettings) -> None:
    """Create the bucket unless it exists, with the lifecycle rule for abandoned uploads."""
    bucket = storage.bucket
    try:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
    except S3Error as exc:
        if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    ensure_incoming_lifecycle(client, storage)


def incoming_upload_rule(storage: StorageSettings) -> Rule:
    """The lifecycle rule aborting multipart uploads left incomplete for a day where uploads
    land (the layout's incoming prefix, whatever the settings call it)."""
    return Rule(
        ENABLED,
        rule_filter=Filter(prefix=ObjectLayout(storage).incoming_prefix()),
        rule_id=INCOMING_RULE_ID,
        abort_incomplete_multipart_upload=AbortIncompleteMultipartUpload(INCOMPLETE_UPLOAD_DAYS),
    )


def ensure_incoming_lifecycle(client: Minio, storage: StorageSettings) -> bool:
    """Abort multipart uploads under the incoming prefix left incomplete for a day; True if the
    store holds that rule afterwards.

    A browser that starts a resumable upload and never comes back leaves parts the store keeps
    forever; an S3 lifecycle rule drops them server-side. Other rules on the bucket are kept:
    only the rule with our id is added. MinIO refuses ``AbortIncompleteMultipartUpload`` (it
    answers InvalidArgument, and accepts it next to an Expiration only to drop it): it removes
    stale multipart uploads itself (``api stale_uploads_expiry``, 24 h by default). A refusal is
    logged and the bucket is used anyway: the rule is housekeeping, not a precondition.
    """
    bucket, rule = storage.bucket, incoming_upload_rule(storage)
    try:
        current = client.get_bucket_lifecycle(bucket)
        rules = list(current.rules) if current is not None else []
        if any(r.rule_id == INCOMING_RULE_ID for r in rules):
            return True
        client.set_bucket_lifecycle(bucket, LifecycleConfig([*rules, rule]))
    except S3Error as exc:
        if bucket not in _LIFECYCLE_REFUSED:  # said once per process, not at every start-up
            _LIFECYCLE_REFUSED.add(bucket)
            # MinIO's known refusal is InvalidArgument (it expires stale uploads itself, after
            # 24 h): not worth a line on every CLI run. Anything else (access denied) warns.
            report = log.debug if exc.code == "InvalidArgument" else log.warning
            report(
                "the store refused the lifecycle rule for incomplete uploads; it must expire "
                "stale uploads itself",
                bucket=bucket, code=exc.code, error=exc.message,
            )  # fmt: skip
        return False
    return True


# What S3 servers answer for a key that is not there (MinIO, AWS and others differ).
MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "ResourceNotFound"})


def object_exists(client: Minio, bucket: str, key: str) -> bool:
    """Whether ``key`` exists; other errors (access, network) propagate."""
    try:
        client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in MISSING_CODES:
            return False
        raise
    return True


def read_object(client: Minio, bucket: str, key: str, limit: int | None = None) -> bytes | None:
    """The bytes of a small object (a manifest, a playlist, an index entry), at most ``limit``
    of them when given; None when there is no such object, other errors propagate. The
    connection goes back to the pool whatever happens."""
    try:
        response = client.get_object(bucket, key)
    except S3Error as exc:
        if exc.code in MISSING_CODES:
            return None
        raise
    try:
        return response.read() if limit is None else response.read(limit)
    finally:
        response.close()
        response.release_conn()


def wait_for_storage(s: StorageSettings, timeout: float = 60.0) -> None:
    """Block until the S3 endpoint answers an authenticated request."""
    client = make_client(s)
    wait_until(f"object storage at {s.endpoint}", client.list_buckets, timeout)


def is_transient(exc: Exception) -> bool:
    """A failure that says the store (or the network to it) is away, not that the request is
    wrong. Local-file errors never get here as ``OSError``: callers read files before calling."""
    if isinstance(exc, S3Error):
        return exc.code in TRANSIENT_S3_CODES
    return isinstance(exc, HTTPError | OSError)


def retry_storage(
    what: str,
    call: Callable[[], T],
    *,
    exhausted: Callable[[str], Exception] = ServiceUnavailable,
) -> T:
    """``call()`` through :data:`STORAGE_OUTAGE`: transient failures are waited out (logged),
    others raise at once, and a store away for the whole budget raises ``exhausted``."""

    def retrying(exc: Exception, delay: float) -> None:
        log.warning("storage unavailable, retrying", step=what, error=str(exc), delay=delay)

    return retry_call(
        what, call, STORAGE_OUTAGE, retry_on=is_transient, on_retry=retrying, exhausted=exhausted
    )
