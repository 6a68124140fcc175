"""Every vendored front-end file is the one its README row records (name and SHA-256), and every
file of the folder has a row: a library changed by hand, or added without a record, shows here."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[2] / "portal" / "static" / "vendor"
ROW = re.compile(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", re.MULTILINE)


def test_every_vendored_file_matches_its_recorded_digest() -> None:
    recorded = dict(ROW.findall((VENDOR / "README.md").read_text()))
    present = {p.name for p in VENDOR.iterdir() if p.suffix == ".js"}
    assert "dash.all-5.2.1.min.js" in present
    assert set(recorded) == present
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
