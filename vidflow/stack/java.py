"""The Java that runs Kafka: refused up front when it is too old, naming the fix."""

from __future__ import annotations

import functools
import re
import subprocess

from vidflow.stack.errors import StackError

__all__ = ["MIN_JAVA", "check_java", "java_major"]

MIN_JAVA = 11  # Kafka 3.9's broker and tools


def java_major(version_text: str) -> int | None:
    """The major version in ``java -version`` output (``"1.8.0_392"`` is 8, ``"17.0.9"`` 17)."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


@functools.cache
def check_java(java: str) -> None:
    """Refuse a Java too old for Kafka up front, naming it, instead of a JVM stack trace in the
    broker's log."""
    shown = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    major = java_major(shown.stderr + shown.stdout)
    if major is not None and major < MIN_JAVA:
        raise StackError(
            f"{java} is Java {major}; Kafka needs Java {MIN_JAVA} or newer: "
            "run `apt-get install openjdk-17-jre-headless`"
        )
