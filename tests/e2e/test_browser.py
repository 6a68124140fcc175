"""A person's view, in Debian's Chromium driven by Playwright, of the whole pipeline running for
real: a clip is submitted while the videos page is open, its row appears and reaches
"completed" without a reload (server-sent events), and its page plays the HLS ladder.

The pipeline (flows, projector, portal) is started once for the module: its tests run on one
xdist worker, each with its own user, videos and browser."""

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
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import msgspec
import psycopg
import pytest
from playwright.sync_api import Page, Request, Route, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from connectors.db import dispose_engine
from connectors.multipart import part_size_for
from connectors.storage import make_client
from core.layout import ObjectLayout
from core.settings import MiB, Settings, settings_environ
from portal.auth import Role
from portal.auth.accounts import create_user
from portal.migrate import upgrade
from portal.projector import Projector
from tests.flows import ROOT, FlowProcess, free_port, wait_http
from tests.integration.test_portal import life_of, produce
from tests.isolation import isolated_copy, remove_isolated
from tests.media import cmaf_ladder, h264_clip, raw_clip
from tests.portal_login import PASSWORD
from vidflow.submit import upload

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("test_browser.running")]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
PROFILES = json.dumps(
    {"small": [{"height": 240, "video_kbps": 400}, {"height": 144, "video_kbps": 150}]}
)


@contextmanager
def _own_database(settings: Settings) -> Iterator[Settings]:
    """``settings`` with a database of their own, migrated; dropped at the end."""
    database = f"t_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(settings.postgres.dsn, autocommit=True)
    admin.execute(f'CREATE DATABASE "{database}"')
    mine = msgspec.structs.replace(
        settings, postgres=msgspec.structs.replace(settings.postgres, database=database)
    )
    try:
        upgrade(mine)
        yield mine
    finally:
        dispose_engine(mine.postgres)
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()


@contextmanager
def _serving(settings: Settings) -> Iterator[str]:
    """The projector (a thread) and the portal (a process) on ``settings``: the base URL."""
    stop = threading.Event()
    projector = threading.Thread(target=Projector(settings).run, kwargs={"stop": stop}, daemon=True)
    projector.start()
    env = {**os.environ, **settings_environ(settings)}
    portal = subprocess.Popen(
        [sys.executable, "-m", "vidflow", "portal", "serve"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{settings.portal.port}"
    try:
        wait_http(f"{base}/healthz")
        yield base
    finally:
        portal.terminate()
        portal.wait(10)
        stop.set()
        projector.join(10)


@pytest.fixture(scope="module")
def module_settings(settings: Settings) -> Iterator[Settings]:
    """Topics and a bucket of the module's own (the tests share one running pipeline)."""
    isolated = isolated_copy(settings)
    yield isolated
    remove_isolated(isolated)


@pytest.fixture(scope="module")
def running(
    module_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    """Ingest and transcode flows, the projector and the portal, on the module's topics and a
    database of its own: started once for the module's tests (each has its own user, videos
    and browser), since starting them took seconds of every test."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run `make browser`"
    work = tmp_path_factory.mktemp("pipeline")
    with _own_database(module_settings) as own:
        settings = msgspec.structs.replace(
            own,
            home=work / "home",
            ingest=msgspec.structs.replace(own.ingest, stream_timeout=2.0, chunk_size=5 * MiB),
            transcode=msgspec.structs.replace(
                own.transcode, profiles_json=PROFILES, default_profile="small", preset="ultrafast"
            ),
            portal=msgspec.structs.replace(own.portal, port=free_port()),
        )
        flows = [
            FlowProcess("dataflows.ingest_flow", settings, work / "ingest").start(),
            FlowProcess("dataflows.transcode_flow", settings, work / "transcode").start(),
        ]
        try:
            with _serving(settings) as base:
                for flow in flows:
                    flow.assert_running()
                yield settings, base
        finally:
            for flow in flows:
                flow.stop()


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CMAF ladder (an FFmpeg encode) for the module's player tests; they only read it."""
    return cmaf_ladder(tmp_path_factory.mktemp("ladder"))


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
            wait_for_completed(page, settings, video_id)
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


def wait_for_completed(page: Page, settings: Settings, video_id: str) -> None:
    """Wait for the video's row to show "completed" without a reload. When it does not, say
    where the change stopped: in the projection (PostgreSQL), or between it and the page (a
    reload shows the badge the live update did not)."""
    badge = page.locator(f"#video-{video_id} .badge.completed")
    try:
        badge.wait_for(timeout=120_000)
    except PlaywrightTimeout:
        with psycopg.connect(settings.postgres.dsn) as conn:
            row = conn.execute(
                "SELECT status, stage, progress FROM videos WHERE id = %s", (video_id,)
            ).fetchone()
        page.reload()
        try:
            badge.wait_for(timeout=10_000)
            shown_after_reload = True
        except PlaywrightTimeout:
            shown_after_reload = False
        raise AssertionError(
            f"no completed badge within 120 s; projection: {row}; "
            f"after a reload the badge {'shows' if shown_after_reload else 'does not show'}"
        ) from None


def _log_in(
    page: Page, base: str, settings: Settings, username: str, role: Role = "uploader"
) -> None:
    """A user created for the test (an uploader unless told), logged in through the login form."""
    create_user(settings, username, PASSWORD, role)
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
            wait_for_completed(page, settings, video_id)

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
            wait_for_completed(page, settings, video_id)
            page.screenshot(path=str(ARTIFACTS / "upload-resumed-completed.png"), full_page=True)
        finally:
            browser.close()


CONTENT_TYPES = {
    ".mpd": "application/dash+xml",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mp4": "video/mp4",
}


def test_dash_manifest_plays_with_dash_js_and_the_page_switches_to_hls(
    running: tuple[Settings, str], ladder: Path
) -> None:
    settings, base = running
    layout, video_id = ObjectLayout(settings.storage), uuid.uuid4().hex
    store = make_client(settings.storage)
    folder = layout.dash_manifest(video_id).rsplit("/", 1)[0]
    assert folder == layout.hls_master(video_id).rsplit("/", 1)[0]  # the two sit side by side
    for path in sorted(ladder.iterdir()):
        store.fput_object(
            settings.storage.bucket, f"{folder}/{path.name}", str(path),
            content_type=CONTENT_TYPES[path.suffix],
        )  # fmt: skip
    # the projector makes it a video whose master is the CMAF one
    produce(settings, life_of(video_id, "dash ladder.mp4", master=layout.hls_master(video_id)))
    page_url = f"{base}/videos/{video_id}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            refused: list[str] = []  # anything the content security policy blocked
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
            )
            pieces: list[tuple[str, int]] = []  # (file name, status) of every rung fetched
            page.on(
                "response",
                lambda r: (
                    pieces.append((r.url.rsplit("/", 1)[1], r.status))
                    if r.url.endswith(".mp4")
                    else None
                ),
            )
            _log_in(page, base, settings, "e2e-admin-dash", "admin")
            deadline = time.monotonic() + 60
            while page.request.get(page_url).status != 200:  # until the projector has it
                assert time.monotonic() < deadline, "the video never reached the projection"
                page.wait_for_timeout(250)

            page.goto(f"{page_url}?player=dash")
            page.wait_for_function(
                "() => document.getElementById('player').dataset.player === 'dash'"
                " && document.getElementById('levels').options.length === 3",
                timeout=30_000,
            )  # auto + the two video rungs of the manifest
            assert page.locator("#player-choice").is_visible()
            page.evaluate(
                "() => { const v = document.getElementById('player'); v.muted = true; v.play(); }"
            )
            page.wait_for_function(
                "() => document.getElementById('player').currentTime > 1.5", timeout=30_000
            )
            state = page.evaluate(
                "() => { const v = document.getElementById('player');"
                " return {error: v.error && v.error.code, failed: v.dataset.playerError || null,"
                " at: v.currentTime}; }"
            )
            assert state["error"] is None and state["failed"] is None, state
            # dash.js read byte ranges of the one fMP4 per rung, and the proxy answered 206
            assert {name for name, status in pieces if status == 206} >= {"rung-2.mp4"}
            assert any(name in {"rung-0.mp4", "rung-1.mp4"} for name, _ in pieces)
            assert all(status == 206 for _, status in pieces), pieces
            page.screenshot(path=str(ARTIFACTS / "video-playing-dash.png"), full_page=True)

            # The choice switches the same page to the HLS ladder (byte ranges too), in place.
            page.select_option("#player-kind", "hls")
            page.wait_for_function(
                "() => document.getElementById('player').dataset.player === 'hls'"
                " && document.getElementById('levels').options.length === 3",
                timeout=30_000,
            )
            assert "player=dash" not in page.url
            page.evaluate(
                "() => { const v = document.getElementById('player'); v.muted = true; v.play(); }"
            )
            page.wait_for_function(
                f"() => document.getElementById('player').currentTime > {state['at'] + 1.0}",
                timeout=30_000,
            )
            assert (
                page.evaluate("() => document.getElementById('player').dataset.playerError || null")
                is None
            )
            assert refused == []
        finally:
            browser.close()


def test_a_video_without_a_dash_manifest_plays_hls_even_when_dash_is_asked(
    running: tuple[Settings, str], ladder: Path
) -> None:
    settings, base = running
    layout, video_id = ObjectLayout(settings.storage), uuid.uuid4().hex
    store = make_client(settings.storage)
    folder = layout.hls_master(video_id).rsplit("/", 1)[0]
    # made before manifests existed: HLS only (the ladder without its manifest.mpd)
    for path in sorted(p for p in ladder.iterdir() if p.name != "manifest.mpd"):
        store.fput_object(
            settings.storage.bucket, f"{folder}/{path.name}", str(path),
            content_type=CONTENT_TYPES[path.suffix],
        )  # fmt: skip
    produce(settings, life_of(video_id, "older.mp4", master=layout.hls_master(video_id)))
    page_url = f"{base}/videos/{video_id}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            _log_in(page, base, settings, "e2e-admin-hls", "admin")
            deadline = time.monotonic() + 60
            while page.request.get(page_url).status != 200:  # until the projector has it
                assert time.monotonic() < deadline, "the video never reached the projection"
                page.wait_for_timeout(250)
            page.goto(f"{page_url}?player=dash")
            page.wait_for_function(
                "() => document.getElementById('player').dataset.player === 'hls'"
                " && document.getElementById('levels').options.length === 3",
                timeout=30_000,
            )
            page.evaluate(
                "() => { const v = document.getElementById('player'); v.muted = true; v.play(); }"
            )
            page.wait_for_function(
                "() => document.getElementById('player').currentTime > 1.0", timeout=30_000
            )
            assert page.locator("#player-choice").is_hidden()  # no DASH to offer
            assert (
                page.evaluate("() => document.getElementById('player').dataset.playerError || null")
                is None
            )
        finally:
            browser.close()
