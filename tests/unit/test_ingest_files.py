"""The ingest flow's checks of a file event's path, in-process on real files (issue 9, obs. 1, 10).

A path is honoured only for a regular file under the watched roots with links resolved; a FIFO
is refused at once (opened without blocking), and so are devices, directories and links out.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from core.roots import resolve_roots, resolve_under
from dataflows.ingest import files
from dataflows.ingest.files import RefusedFile, open_regular


@pytest.fixture
def root(tmp_path: Path) -> Path:
    made = tmp_path / "watch"
    made.mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.mp4").write_bytes(b"secret")
    return made


def test_a_path_is_under_the_roots_only_with_its_links_resolved(root: Path) -> None:
    roots = resolve_roots([root])
    (root / "clip.mp4").write_bytes(b"x")
    (root / "alias.mp4").symlink_to(root / "clip.mp4")
    (root / "escape.mp4").symlink_to(root.parent / "outside" / "secret.mp4")
    (root / "linked").symlink_to(root.parent / "outside")
    assert resolve_under(root / "clip.mp4", roots) == (root / "clip.mp4").resolve()
    assert resolve_under(root / "alias.mp4", roots) == (root / "clip.mp4").resolve()
    assert resolve_under("/etc/passwd", roots) is None
    assert resolve_under(root / "escape.mp4", roots) is None
    assert resolve_under(root / "linked" / "secret.mp4", roots) is None
    assert resolve_under(f"{root}/../outside/secret.mp4", roots) is None
    assert resolve_under("clip.mp4", roots) is None  # relative: means nothing here
    assert resolve_under(f"{root}-evil/clip.mp4", roots) is None  # a prefix is not a parent


def test_a_regular_file_under_the_roots_opens(root: Path) -> None:
    (root / "clip.mp4").write_bytes(b"12345")
    inode = (root / "clip.mp4").stat().st_ino
    with open_regular(root / "clip.mp4", resolve_roots([root]), inode=inode) as (fd, facts):
        assert facts.st_size == 5
        assert os.pread(fd, 5, 0) == b"12345"


def test_anything_else_is_refused_without_blocking(root: Path) -> None:
    roots = resolve_roots([root])
    os.mkfifo(root / "pipe.mp4")
    (root / "dir.mp4").mkdir()
    (root / "escape.mp4").symlink_to(root.parent / "outside" / "secret.mp4")
    (root / "clip.mp4").write_bytes(b"x")
    refused: dict[str, str] = {}

    def attempt() -> None:
        for name in ("pipe.mp4", "dir.mp4", "escape.mp4"):
            try:
                with open_regular(root / name, roots):
                    refused[name] = "opened"
            except RefusedFile as exc:
                refused[name] = str(exc)
        for name, path in (("passwd", Path("/etc/passwd")), ("null", Path("/dev/null"))):
            try:
                with open_regular(path, roots):
                    refused[name] = "opened"
            except RefusedFile as exc:
                refused[name] = str(exc)
        try:
            with open_regular(root / "clip.mp4", roots, inode=1):
                refused["replaced"] = "opened"
        except RefusedFile as exc:
            refused["replaced"] = str(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "opening a FIFO blocked"
    assert "FIFO" in refused["pipe.mp4"]
    assert "directory" in refused["dir.mp4"]
    assert "outside" in refused["escape.mp4"]
    assert "outside" in refused["passwd"] and "outside" in refused["null"]
    assert "replaced" in refused["replaced"]


def test_a_directory_swapped_for_a_link_after_resolution_is_not_followed(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the path is resolved while ``sub`` is a directory, then ``sub`` becomes a link
    out of the root before the open. Opening component by component refuses it."""
    roots = resolve_roots([root])
    (root / "sub").mkdir()
    (root / "sub" / "secret.mp4").write_bytes(b"inside")
    resolved = files.root_and_rest(root / "sub" / "secret.mp4", roots)
    (root / "sub").rename(root / "moved")
    (root / "sub").symlink_to(root.parent / "outside")  # holds a secret.mp4 of its own
    monkeypatch.setattr(files, "root_and_rest", lambda _path, _roots: resolved)
    with (
        pytest.raises(RefusedFile, match="symbolic link"),
        open_regular(root / "sub" / "secret.mp4", roots),
    ):
        pass
