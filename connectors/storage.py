"""S3 object storage (MinIO locally) through the minio client, speaking plain S3 only."""

from __future__ import annotations

import urllib3
from minio import Minio
from minio.error import S3Error

from connectors.retry import wait_until
from vidflow.settings import StorageSettings

__all__ = ["ensure_bucket", "make_client", "object_exists", "wait_for_storage"]


def make_client(s: StorageSettings) -> Minio:
    """A client whose HTTP pool retries connection errors with backoff (the server may restart)."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5.0, read=120.0),
        maxsize=16,
        retries=urllib3.Retry(total=5, backoff_factor=0.5, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        s.endpoint,
        access_key=s.access_key.reveal(),
        secret_key=s.secret_key.reveal(),
        secure=s.secure,
        region=s.region,
        http_client=http,
    )


def ensure_bucket(client: Minio, bucket: str) -> None:
    """Create the bucket unless it exists."""
    try:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
    except S3Error as exc:
        if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise


def object_exists(client: Minio, bucket: str, key: str) -> bool:
    """Whether ``key`` exists; other errors (access, network) propagate."""
    try:
        client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}:
            return False
        raise
    return True


def wait_for_storage(s: StorageSettings, timeout: float = 60.0) -> None:
    """Block until the S3 endpoint answers an authenticated request."""
    client = make_client(s)
    wait_until(f"object storage at {s.endpoint}", client.list_buckets, timeout)
