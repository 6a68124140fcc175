"""The video page's action buttons (reprocess, cancel, delete) are answered with one HTML
fragment, ``_action_result.html``, for a success and for a refusal alike: htmx swaps it into
the page's ``#action-result``, and a refusal carries its public reason, escaped."""

from __future__ import annotations

from html.parser import HTMLParser

import msgspec
import pytest
from litestar.testing import TestClient

from core.settings import Settings
from portal.app import create_app
from tests.integration.test_portal_auth import add_video
from tests.portal_login import csrf_headers, log_in

pytestmark = pytest.mark.integration

SMALL = '{"small": [{"height": 144, "video_kbps": 200}]}'


class _Fragment(HTMLParser):
    """The elements of an answer (tag and attributes, in order) and its text."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def _outcome(markup: str) -> tuple[str, str]:
    """The fragment's outcome (``done`` or ``refused``) and its words; fails on anything else
    (a whole page, plain text, or more than the one element)."""
    fragment = _Fragment(markup)
    assert len(fragment.elements) == 1, markup
    tag, attrs = fragment.elements[0]
    assert tag == "span" and "action-result" in (attrs.get("class") or "").split(), markup
    assert markup.strip().startswith("<span") and markup.strip().endswith("</span>"), markup
    return attrs.get("data-outcome") or "", fragment.text.strip()


def test_the_action_buttons_answer_with_the_same_fragment_for_success_and_refusal(
    portal_settings: Settings,
) -> None:
    settings = msgspec.structs.replace(
        portal_settings,
        transcode=msgspec.structs.replace(portal_settings.transcode, profiles_json=SMALL),
    )
    video_id = add_video(settings, "uma", "uma.mp4")
    with TestClient(app=create_app(settings)) as client:
        log_in(client, settings, "uma", "uploader")
        headers = {**csrf_headers(client), "HX-Request": "true"}

        cancelled = client.post(f"/videos/{video_id}/cancel", headers=headers)
        assert cancelled.status_code == 201
        assert cancelled.headers["content-type"].startswith("text/html")
        assert _outcome(cancelled.text) == ("done", "Cancel requested.")

        redone = client.post(
            f"/videos/{video_id}/reprocess", data={"profile": "small"}, headers=headers
        )
        assert redone.status_code == 201
        outcome, words = _outcome(redone.text)
        assert outcome == "done" and "profile small" in words, words

        refused = client.post(
            f"/videos/{video_id}/reprocess", data={"profile": "<huge>"}, headers=headers
        )
        assert refused.status_code == 400
        assert refused.headers["content-type"].startswith("text/html")
        assert "&lt;huge&gt;" in refused.text and "<huge>" not in refused.text  # escaped
        outcome, words = _outcome(refused.text)
        assert outcome == "refused" and "unknown profile" in words and "<huge>" in words

        deleted = client.post(f"/videos/{video_id}/delete", headers=headers)
        assert deleted.status_code == 202 and deleted.headers["HX-Redirect"] == "/"
        assert _outcome(deleted.text) == ("done", "Delete requested.")


def test_a_button_refused_by_the_portal_gets_the_fragment_not_an_error_page(
    portal_settings: Settings,
) -> None:
    """A refusal raised before the handler answers (someone else's video: 404, a viewer: 403)
    reaches the button as the same fragment, not a whole error page inside the page."""
    theirs = add_video(portal_settings, "vic", "vic.mp4")
    with TestClient(app=create_app(portal_settings)) as client:
        log_in(client, portal_settings, "uma", "uploader")
        headers = {**csrf_headers(client), "HX-Request": "true", "Accept": "text/html"}
        missing = client.post(f"/videos/{theirs}/cancel", headers=headers)
        assert missing.status_code == 404
        outcome, words = _outcome(missing.text)
        assert outcome == "refused" and f"no video {theirs}" in words, words
        client.cookies.clear()
        log_in(client, portal_settings, "vic", "viewer")
        headers = {**csrf_headers(client), "HX-Request": "true", "Accept": "text/html"}
        forbidden = client.post(f"/videos/{theirs}/reprocess", headers=headers)
        assert forbidden.status_code == 403
        outcome, words = _outcome(forbidden.text)
        assert outcome == "refused" and "uploader or admin role" in words, words
        # without htmx (a plain form post) the refusal is still the full error page
        plain = client.post(
            f"/videos/{theirs}/reprocess", headers={**csrf_headers(client), "Accept": "text/html"}
        )
        assert plain.status_code == 403 and "<h1>" in plain.text
