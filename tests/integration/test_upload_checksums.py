"""Issue 13: a browser sends each part with its SHA-256 (``x-amz-checksum-sha256``, computed
with WebCrypto by ``portal/static/upload.js``) and the store checks it on arrival, through the
very presigned part URL the portal hands out (it signs ``host`` only: the checksum header needs
no signature). A part whose bytes changed on the way is refused and not stored; a browser that
cannot hash (no WebCrypto outside a secure context) still uploads without the header. Real
MinIO, Kafka and PostgreSQL.
"""

from __future__ import annotations

import base64
import hashlib
import os

import httpx
import pytest
from litestar.testing import TestClient

from connectors.multipart import MIN_PART_SIZE
from core.settings import Settings
from portal.app import create_app
from tests.portal_login import csrf_headers, log_in

pytestmark = pytest.mark.integration

PART = MIN_PART_SIZE
CHECKSUM = "x-amz-checksum-sha256"


def checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_parts_are_checked_by_the_store_against_their_sha256_on_arrival(
    portal_settings: Settings,
) -> None:
    data = os.urandom(PART + 4321)
    parts = {1: data[:PART], 2: data[PART:]}
    with TestClient(app=create_app(portal_settings)) as client:
        log_in(client, portal_settings, "uploader")
        auth = csrf_headers(client)
        created = client.post(
            "/api/uploads", json={"filename": "checked.mp4", "size": len(data)}, headers=auth
        )
        assert created.status_code == 201, created.text
        upload_id = created.json()["upload_id"]
        urls = client.post(
            f"/api/uploads/{upload_id}/parts", json={"numbers": [1, 2]}, headers=auth
        ).json()["urls"]
        url = {item["number"]: item["url"] for item in urls}
        with httpx.Client(timeout=30) as store:
            damaged = parts[1][:-1] + bytes([parts[1][-1] ^ 1])  # one bit flipped on the way
            refused = store.put(url[1], content=damaged, headers={CHECKSUM: checksum(parts[1])})
            assert refused.status_code == 400 and "ChecksumMismatch" in refused.text
            state = client.get(f"/api/uploads/{upload_id}", headers=auth).json()
            assert state["stored"] == []  # the damaged part was never stored
            sent = store.put(url[1], content=parts[1], headers={CHECKSUM: checksum(parts[1])})
            assert sent.status_code == 200, sent.text
            plain = store.put(url[2], content=parts[2])  # a browser without WebCrypto
            assert plain.status_code == 200, plain.text
        assert client.get(f"/api/uploads/{upload_id}", headers=auth).json()["stored"] == [1, 2]
        done = client.post(f"/api/uploads/{upload_id}/complete", headers=auth)
        assert done.status_code == 200 and done.json()["status"] == "completed", done.text
