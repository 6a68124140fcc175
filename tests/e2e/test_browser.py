"""A person's view, in Debian's Chromium driven by Playwright, of the whole pipeline running for
real: a clip is submitted while the videos page is open, its row appears and reaches
"completed" without a reload (server-sent events), and its page plays the HLS ladder."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec
import psycopg
import pytest
from playwright.sync_api import Page, Request, Route, sync_playwright

from connectors.db import dispose_engine
from connectors.multipart import part_size_for
from core.settings import MiB, Settings, settings_environ
from portal.accounts import create_user
from portal.migrate import upgrade
from portal.projector import Projector
from tests.flows import ROOT, FlowProcess, free_port, wait_http
from tests.media import h264_clip, raw_clip
from tests.portal_login import PASSWORD
from vidflow.submit import upload

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
PROFILES = json.dumps(
    {"small": [{"height": 240, "video_kbps": 400}, {"height": 144, "video_kbps": 150}]}
)


@pytest.fixture
def running(isolated_settings: Settings, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    """Ingest and transcode flows, the projector and the portal, on isolated topics and database."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make browser`"
    database = f"t_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(isolated_settings.postgres.dsn, autocommit=True)
    admin.execute(f'CREATE DATABASE "{database}"')
    port = free_port()
    settings = msgspec.structs.replace(
        isolated_settings,
        home=tmp_path / "home",
        postgres=msgspec.structs.replace(isolated_settings.postgres, database=database),
        ingest=msgspec.structs.replace(
            isolated_settings.ingest, stream_timeout=2.0, chunk_size=5 * MiB
        ),
        transcode=msgspec.structs.replace(
            isolated_settings.transcode,
            profiles_json=PROFILES,
            default_profile="small",
            preset="ultrafast",
        ),
        portal=msgspec.structs.replace(isolated_settings.portal, port=port),
    )
    upgrade(settings)
    flows = [
        FlowProcess("dataflows.ingest_flow", settings, tmp_path / "ingest").start(),
        FlowProcess("dataflows.transcode_flow", settings, tmp_path / "transcode").start(),
    ]
    stop = threading.Event()
    projector = threading.Thread(target=Projector(settings).run, kwargs={"stop": stop}, daemon=True)
    projector.start()
    env = {**os.environ, **settings_environ(settings)}
    portal = subprocess.Popen(
        [sys.executable, "-m", "vidflow", "portal", "serve"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz")
    for flow in flows:
        flow.assert_running()
    try:
        yield settings, base
    finally:
        portal.terminate()
        portal.wait(10)
        stop.set()
        projector.join(10)
        for flow in flows:
            flow.stop()
        dispose_engine(settings.postgres)
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


def test_submitted_clip_goes_live_to_completed_and_plays(
    running: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, base = running
    clip = h264_clip(tmp_path / "garden party.mp4", seconds=3, size="426x240")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            refused: list[str] = []  # anything the content security policy blocked
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
            )
            _log_in(page, base, settings, "e2e")  # the owner `upload` below records
            page.goto(base + "/")
            # predicates are functions: a bare expression is polled through eval, which the
            # page's content security policy (rightly) refuses
            page.wait_for_function("() => document.querySelector('[sse-connect]') !== null")
            page.wait_for_timeout(500)  # the event stream is open
            video_id, _ = upload(settings, clip, "small", "e2e", quiet=True)
            row = page.locator(f"#video-{video_id}")
            row.wait_for(timeout=60_000)  # appeared without a reload
            page.locator(f"#video-{video_id} .badge.completed").wait_for(timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "videos-completed.png"), full_page=True)

            page.goto(f"{base}/videos/{video_id}")
            page.wait_for_function(
                "() => document.getElementById('levels').options.length >= 3", timeout=30_000
            )
            page.evaluate(
                "() => { const v = document.getElementById('player'); v.muted = true; v.play(); }"
            )
            playing = (
                "() => { const v = document.getElementById('player'); return v.currentTime > 0.5; }"
            )
            page.wait_for_function(playing, timeout=30_000)
            poster = page.get_attribute("#player", "poster") or ""
            assert poster.endswith("/poster.jpg")
            bar = page.locator(".scrub")  # scrub previews from the sprite sheet
            box = bar.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
            thumb = page.locator(".scrub-thumb")
            thumb.wait_for(state="visible", timeout=5_000)
            style = thumb.get_attribute("style") or ""
            assert "sprite.jpg" in style and "background-position" in style
            page.screenshot(path=str(ARTIFACTS / "video-playing.png"), full_page=True)

            # Reprocess with another profile: the answer shows on the page, and the new job's
            # events reach the timeline live (no reload).
            entries = page.locator("#timeline li").count()
            page.select_option("select[name=profile]", "small")
            page.click("section.actions button:has-text('Reprocess')")
            page.locator("#action-result", has_text="profile small").wait_for(timeout=15_000)
            page.wait_for_function(
                f"() => document.querySelectorAll('#timeline li').length > {entries}",
                timeout=120_000,
            )
            assert refused == []
        finally:
            browser.close()


def _log_in(page: Page, base: str, settings: Settings, username: str) -> None:
    """An uploader created for the test, logged in through the login form."""
    create_user(settings, username, PASSWORD, "uploader")
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button")
    page.wait_for_url(f"{base}/")


def _upload_through_the_page(page: Page, base: str, clip: Path) -> str:
    """Choose the file on /upload, press Upload, wait for the link to the new video."""
    page.goto(f"{base}/upload")
    page.set_input_files("#upload-file", str(clip))
    page.click("#upload-start")
    link = page.locator("#upload-video")
    link.wait_for(timeout=120_000)
    video_id = link.get_attribute("data-video-id")
    assert video_id
    return video_id


def _part_number(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["partNumber"][0])


def test_upload_page_resumes_after_a_lost_connection_and_a_reload(
    running: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, base = running
    first = raw_clip(tmp_path / "first take.mkv", seconds=4)  # ~11 MiB: three 5 MiB parts
    second = raw_clip(tmp_path / "second take.mkv", seconds=4.4)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            _log_in(page, base, settings, "e2e-uploader")
            video_id = _upload_through_the_page(page, base, first)
            page.goto(f"{base}/")
            page.locator(f"#video-{video_id} .badge.completed").wait_for(timeout=120_000)

            # The connection drops after the first part: every later part PUT fails.
            let_through: list[int] = []

            def cut_after_first_part(route: Route) -> None:
                if route.request.method != "PUT":
                    route.continue_()
                elif not let_through:
                    let_through.append(_part_number(route.request.url))
                    route.continue_()
                else:
                    route.abort("internetdisconnected")

            page.route("**/incoming/**", cut_after_first_part)
            page.goto(f"{base}/upload")
            page.set_input_files("#upload-file", str(second))
            page.click("#upload-start")
            deadline = time.monotonic() + 60
            while not (upload_id := page.evaluate("Object.values(localStorage)[0] || ''")):
                assert time.monotonic() < deadline, "the upload never started"
                page.wait_for_timeout(100)
            while (
                page.request.get(f"{base}/api/uploads/{upload_id}").json()["stored"] != let_through
            ):
                assert time.monotonic() < deadline, "the first part never arrived"
                page.wait_for_timeout(250)
            page.locator("#upload-status", has_text="retrying").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "upload-interrupted.png"), full_page=True)

            # Back online, the page is reloaded and the same file chosen again: it resumes.
            page.unroute("**/incoming/**")
            sent: list[int] = []
            checksums: dict[int, str] = {}

            def part_sent(r: Request) -> None:
                if r.method == "PUT" and "/incoming/" in r.url:
                    sent.append(_part_number(r.url))
                    checksums[sent[-1]] = r.headers.get("x-amz-checksum-sha256", "")

            page.on("request", part_sent)
            page.reload()
            video_id = _upload_through_the_page(page, base, second)
            assert sorted(sent) == [n for n in (1, 2, 3) if n not in let_through]  # no part twice
            # issue 13: each part carries its SHA-256, which the store checked on arrival
            data, size = second.read_bytes(), part_size_for(second.stat().st_size)
            for number, header in checksums.items():
                part = data[(number - 1) * size : number * size]
                assert header == base64.b64encode(hashlib.sha256(part).digest()).decode()
            page.goto(f"{base}/")
            page.locator(f"#video-{video_id} .badge.completed").wait_for(timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "upload-resumed-completed.png"), full_page=True)
        finally:
            browser.close()
