"""Watcher rules (pure): ignore patterns, symlinks leaving the roots, stream ids."""

from __future__ import annotations

import os
from pathlib import Path

from watcher.watching import FileFacts, inside_roots, is_ignored, reportable, stream_id_for

PATTERNS = (".*", "*.tmp", "*.part")


def test_hidden_and_temporary_files_are_ignored(tmp_path: Path) -> None:
    assert is_ignored(tmp_path / ".recording.mp4", tmp_path, PATTERNS)
    assert is_ignored(tmp_path / "cam" / "clip.mp4.part", tmp_path, PATTERNS)
    assert is_ignored(tmp_path / ".cache" / "clip.mp4", tmp_path, PATTERNS)  # hidden directory
    assert not is_ignored(tmp_path / "cam" / "clip.mp4", tmp_path, PATTERNS)


def test_symlink_leading_outside_is_detected(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"x")
    (root / "inner.mp4").write_bytes(b"y")
    (root / "escape.mp4").symlink_to(outside / "secret.mp4")
    (root / "alias.mp4").symlink_to(root / "inner.mp4")
    assert not inside_roots(root / "escape.mp4", [root])
    assert inside_roots(root / "alias.mp4", [root])


def test_file_facts_and_stream_ids(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    path.write_bytes(b"12345")
    facts = FileFacts.of(path)
    assert facts.size == 5 and facts.inode > 0
    assert stream_id_for("cam-1", path) == f"cam-1:{path}"


def test_only_regular_files_still_under_the_roots_are_reportable(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"s")
    (root / "clip.mp4").write_bytes(b"c")
    (root / "linked").symlink_to(outside)  # a directory link: its files are outside
    os.mkfifo(root / "pipe.mp4")
    (root / "dir.mp4").mkdir()
    assert reportable(root / "clip.mp4", [root], PATTERNS)
    assert not reportable(root / "linked" / "secret.mp4", [root], PATTERNS)
    assert not reportable(root / "pipe.mp4", [root], PATTERNS)
    assert not reportable(root / "dir.mp4", [root], PATTERNS)
    assert not reportable(outside / "secret.mp4", [root], PATTERNS)
