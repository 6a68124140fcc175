"""Kafka's Java is checked before the broker starts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vidflow.stack.errors import StackError
from vidflow.stack.java import check_java, java_major


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ('openjdk version "17.0.13" 2024-10-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("something else entirely", None),
    ],
)
def test_java_major(text: str, major: int | None) -> None:
    assert java_major(text) == major


def test_this_machines_java_is_accepted_and_an_old_one_refused(tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java is not None, "Java is part of the local stack (make test installs it)"
    check_java(java)  # the installed JRE 17 passes
    old = tmp_path / "java"
    old.write_text("#!/bin/sh\necho 'java version \"1.8.0_392\"' >&2\n")
    old.chmod(0o755)
    with pytest.raises(StackError, match="Java 8; Kafka needs Java 11"):
        check_java(str(old))
