"""Idempotent, cached installation of the local services' software.

Debian packages come from apt; Kafka's jars from Maven Central (resolved by ``kafka-pom.xml``);
MinIO is built from its Go module. Artefacts live in the cache directory outside the checkout so
a fresh clone on the same machine, and every later run, reuses them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from core.logs import get_logger
from vidflow.stack.errors import StackError

__all__ = [
    "APT_PACKAGES",
    "KAFKA_VERSION",
    "MINIO_MODULE",
    "ensure_debian_packages",
    "ensure_kafka",
    "ensure_minio",
    "install_all",
    "postgres_bin",
]

log = get_logger("vidflow.stack")

KAFKA_VERSION = "3.9.1"
# The Go proxy refuses MinIO's RELEASE.* tags (not semver); this pseudo-version is the
# repository's final commit, which changed only the README after RELEASE.2025-10-15T17-29-55Z.
MINIO_MODULE = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_MIN_GO = (1, 24)

# command that must exist -> Debian package providing it
APT_PACKAGES: dict[str, str] = {
    "java": "openjdk-17-jre-headless",
    "mvn": "maven",
    "ffmpeg": "ffmpeg",
    "ffprobe": "ffmpeg",
    "prometheus": "prometheus",
    "/usr/lib/postgresql": "postgresql",
}

_POM = Path(__file__).with_name("kafka-pom.xml")


def _present(command: str) -> bool:
    if command.startswith("/"):
        return Path(command).exists()
    return shutil.which(command) is not None


def ensure_debian_packages(wanted: dict[str, str] | None = None) -> None:
    """Install with apt whichever packages provide commands that are missing."""
    wanted = APT_PACKAGES if wanted is None else wanted
    missing = sorted({pkg for cmd, pkg in wanted.items() if not _present(cmd)})
    if not missing:
        return
    command = ["apt-get", "install", "-y", "-q", *missing]
    if os.geteuid() != 0:
        raise StackError(
            f"missing Debian packages {', '.join(missing)}: run "
            f"`sudo apt-get update && sudo {' '.join(command)}` and try again"
        )
    log.info("installing Debian packages", packages=missing)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update", "-q"], command):
        done = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(
                f"`{' '.join(step)}` failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )


def postgres_bin() -> Path:
    """Directory of the newest installed PostgreSQL server binaries."""
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise StackError("PostgreSQL server not found: run `apt-get install postgresql`")
    return versions[-1]


def ensure_kafka(cache: Path) -> Path:
    """The directory of Kafka's jars, resolved from Maven Central on first use."""
    libs = cache / f"kafka-{KAFKA_VERSION}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise StackError(
            "Maven not found: run `apt-get install maven` (Kafka's jars come from Maven Central)"
        )
    log.info("resolving Kafka jars from Maven Central", version=KAFKA_VERSION, into=str(libs))
    libs.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(_POM),
            f"-Dkafka.version={KAFKA_VERSION}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise StackError(
            f"resolving Kafka's jars with Maven failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    marker.write_text(KAFKA_VERSION)
    return libs


def _go_version() -> tuple[int, int] | None:
    go = shutil.which("go")
    if go is None:
        return None
    out = subprocess.run(
        [go, "env", "GOVERSION"], capture_output=True, text=True, check=False
    ).stdout
    parts = out.strip().removeprefix("go").split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def ensure_minio(cache: Path) -> Path:
    """The MinIO server binary, built with ``go install`` on first use (several minutes)."""
    version = MINIO_MODULE.rsplit("@", 1)[1]
    target = cache / f"minio-{version}"
    binary = target / "minio"
    if binary.exists():
        return binary
    found = _go_version()
    if found is None or found < MINIO_MIN_GO:
        need = ".".join(map(str, MINIO_MIN_GO))
        have = "not installed" if found is None else "go" + ".".join(map(str, found))
        raise StackError(f"building MinIO needs Go >= {need} ({have}): install Go from go.dev/dl")
    target.mkdir(parents=True, exist_ok=True)
    build_log = target / "build.log"
    log.info(
        "building MinIO from its Go module (first run only)",
        module=MINIO_MODULE,
        log=str(build_log),
    )
    with build_log.open("w") as out:
        done = subprocess.run(
            ["go", "install", MINIO_MODULE],
            env={**os.environ, "GOBIN": str(target), "CGO_ENABLED": "0"},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0 or not binary.exists():
        tail = build_log.read_text()[-3000:]
        raise StackError(f"building MinIO failed (log: {build_log}):\n{tail}")
    return binary


def install_all(cache: Path) -> dict[str, Path]:
    """Everything the local stack needs, installed once and cached."""
    ensure_debian_packages()
    return {"kafka": ensure_kafka(cache), "minio": ensure_minio(cache), "postgres": postgres_bin()}
