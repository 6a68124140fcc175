"""The webhook sender's pure parts: the signature scheme, the retry schedule, the body, the
settings group."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from connectors.webhook_targets import resolve_target
from core import events as ev
from core.settings import SettingsError, load_settings
from webhooks.sender import next_attempt, payload, webhook_id
from webhooks.signing import sign, signed_headers

# The known answer of the Standard Webhooks reference library's own test (``test_sign_function``
# in standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_is_the_reference_librarys_known_answer() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    # the key is the base64 after the prefix; unpadded base64 is the same key
    unpadded = SPEC_SECRET.rstrip("=")
    assert sign(unpadded, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY) != SPEC_SIGNATURE
    assert sign(SPEC_SECRET, SPEC_ID + "x", SPEC_TIMESTAMP, SPEC_BODY) != SPEC_SIGNATURE


def test_the_headers_carry_id_timestamp_and_signature() -> None:
    headers = signed_headers(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert headers == {
        "content-type": "application/json",
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
    }


def test_the_webhook_id_is_stable_per_event_and_subscription_and_has_no_dot() -> None:
    assert webhook_id(1, "a.b") == webhook_id(1, "a.b")
    assert webhook_id(1, "a.b") != webhook_id(2, "a.b") != webhook_id(1, "a.c")
    assert "." not in webhook_id(1, "a.b") and webhook_id(1, "x").startswith("msg_")


def test_retries_back_off_exponentially_and_stop_after_the_window() -> None:
    w = load_settings({}).webhooks
    start = datetime(2026, 1, 1, tzinfo=UTC)
    expires = start + timedelta(hours=w.max_age_hours)
    now, pauses = start, []
    for attempts in range(1, 50):
        after = next_attempt(w, attempts, now, expires)
        if after is None:
            break
        pauses.append((after - now).total_seconds())
        now = after
    assert pauses[:4] == [10.0, 30.0, 90.0, 270.0]
    # tried until the end of the window (24 hours), never past it, never idle for long
    assert now == expires and max(pauses) <= 6 * 3600
    assert next_attempt(w, len(pauses) + 1, now, expires) is None


def test_the_body_is_type_timestamp_and_the_event() -> None:
    event = ev.JobFailed(
        id="e1", video_id="v1", run="r1", seq=3, reason="not a readable video", ts=1614265330.5
    )
    body = json.loads(payload(event))
    assert body["type"] == "job.failed"
    assert body["timestamp"] == "2021-02-25T15:02:10.500000Z"
    assert body["data"] == json.loads(msgspec.json.encode(event)) | {"type": "job.failed"}


def test_the_settings_group_reads_its_variables_and_refuses_nonsense() -> None:
    settings = load_settings(
        {"VIDFLOW_WEBHOOKS_ALLOW_PRIVATE": "true", "VIDFLOW_WEBHOOKS_TIMEOUT": "2.5"}
    )
    assert settings.webhooks.allow_private is True and settings.webhooks.timeout == 2.5
    assert load_settings({}).webhooks.allow_private is False
    with pytest.raises(SettingsError, match="BACKOFF_FACTOR"):
        load_settings({"VIDFLOW_WEBHOOKS_BACKOFF_FACTOR": "0.5"})
    with pytest.raises(SettingsError, match="VIDFLOW_METRICS_WEBHOOKS_PORT"):
        load_settings({"VIDFLOW_METRICS_WEBHOOKS_PORT": "19101"})


def test_the_readmes_five_line_verifier_accepts_a_signed_post_and_refuses_a_changed_one() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Webhooks") :]
    start = section.index("```python") + len("```python")
    snippet = section[start : section.index("```", start)]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # the documented code, as a reader would paste it
    verify = namespace["verify"]
    body = b'{"type": "job.completed"}'
    headers = signed_headers(SPEC_SECRET, SPEC_ID, int(time.time()), body)
    assert verify(SPEC_SECRET, headers, body) is True
    assert verify(SPEC_SECRET, headers, body + b" ") is False
    old = signed_headers(SPEC_SECRET, SPEC_ID, int(time.time()) - 3600, body)
    assert verify(SPEC_SECRET, old, body) is False


def test_the_post_goes_to_the_address_that_was_checked_not_to_a_second_lookup() -> None:
    """A name that resolves to a public address when checked and to an inside one a moment
    later (DNS rebinding) must not reach the inside: the request is pinned to the checked
    address, with the name kept for the Host header and TLS (SNI and certificate check)."""
    target = resolve_target("https://localhost:8443/hook?x=1", allow_private=True)
    assert target.addresses and all(a in {"127.0.0.1", "::1"} for a in target.addresses)
    first = target.connect_url(target.addresses[0])
    assert first in {"https://127.0.0.1:8443/hook?x=1", "https://[::1]:8443/hook?x=1"}
    assert target.host_header == "localhost:8443" and target.sni_hostname == "localhost"
    plain = resolve_target("http://127.0.0.1/", allow_private=True)
    assert plain.connect_url("127.0.0.1") == "http://127.0.0.1:80/"
    assert plain.host_header == "127.0.0.1"


def test_the_sender_may_join_its_own_group_on_a_broker_with_acls() -> None:
    """``vidflow up`` runs the sender as the ``portal`` principal: its group must be granted."""
    from vidflow.stack.acls import Grant, grants
    from webhooks.sender import group_for

    settings = load_settings({})
    assert Grant("portal", "group", group_for(settings), "read") in grants(settings.kafka)
    assert group_for(settings) != "vidflow-projector." + settings.kafka.topic_status
