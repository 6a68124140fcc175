"""MinIO, the local stack's object storage."""

from __future__ import annotations

import os
from pathlib import Path

from core.settings import Settings
from vidflow.stack.service import Launch, Service, StackPaths, http_ok, split_host_port

__all__ = ["PERFORMANCE_FLAGS", "MinIO"]

# ``--no-compat``: MinIO stops computing an MD5 of every byte for S3's ETag (its ETags are then
# not MD5s), which was half of its CPU per byte stored (bench/ingest.py: cpu_store_seconds_per_gib).
# vidflow never reads an ETag as a digest: integrity is the SHA-256 checksums the store verifies
# on arrival (x-amz-checksum-sha256) and the manifest's digests. Checksum checks stay on.
PERFORMANCE_FLAGS = ("--no-compat",)


class MinIO(Service):
    """MinIO object storage built from its Go module."""

    name = "minio"
    setting = "VIDFLOW_STORAGE_ENDPOINT"

    def address(self, settings: Settings) -> str:
        return settings.storage.endpoint

    def ports(self, settings: Settings) -> list[int]:
        port = split_host_port(self.address(settings))[1]
        return [port, port + 1]  # the console listens right above the S3 API

    def launch(self, settings: Settings, paths: StackPaths, tools: dict[str, Path]) -> Launch:
        host, port = split_host_port(self.address(settings))
        data = paths.data(self.name) / "data"
        data.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MINIO_ROOT_USER": settings.storage.access_key.reveal(),
            "MINIO_ROOT_PASSWORD": settings.storage.secret_key.reveal(),
            "MINIO_PROMETHEUS_AUTH_TYPE": "public",
            "MINIO_UPDATE": "off",
            "MINIO_CI_CD": "1",
        }
        argv = [
            str(tools["minio"]),
            "server",
            str(data),
            "--quiet",
            "--address",
            f"{host}:{port}",
            "--console-address",
            f"{host}:{port + 1}",
            *PERFORMANCE_FLAGS,
        ]
        return Launch(argv, env=env)

    def probe(self, settings: Settings) -> None:
        http_ok(f"{settings.storage.url}/minio/health/live")
