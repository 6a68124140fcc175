"""The Standard Webhooks signature scheme (symmetric, ``v1``), as receivers verify it.

The secret is ``whsec_`` and the base64 of the key; the signature is the base64 HMAC-SHA256,
under that key, of ``{webhook-id}.{webhook-timestamp}.{body}``, sent as ``v1,<signature>``.
Signing the id and the time with the body lets a receiver refuse a replayed or altered POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["SECRET_PREFIX", "sign", "signed_headers"]

SECRET_PREFIX = "whsec_"


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(SECRET_PREFIX)
    # unpadded base64 is accepted too, as the reference libraries do
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``{msg_id}.{timestamp}.{body}`` under ``secret``."""
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one POST: id, attempt time and signature, plus the JSON content type."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
