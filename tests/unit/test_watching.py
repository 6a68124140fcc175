"""Watcher rules (pure): ignore patterns, symlinks leaving the roots, stream ids."""

from __future__ import annotations

from pathlib import Path

from vidflow.watching import FileFacts, inside_roots, is_ignored, stream_id_for

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
