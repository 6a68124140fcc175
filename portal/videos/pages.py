"""The videos pages: the list (HTMX filters answered with the table fragment), a video's page,
and its actions (cancel, reprocess), answered with a fragment the button shows in place."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from litestar import Controller, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest, HTMXTemplate
from litestar.response import Template
from litestar.status_codes import HTTP_201_CREATED, HTTP_503_SERVICE_UNAVAILABLE
from minio import Minio
from minio.error import S3Error

from connectors.kafka import flush_or_raise, produce_event
from core import events as ev
from core.errors import public_reason
from core.layout import ObjectLayout
from core.logs import get_logger
from portal import queries
from portal.auth import requires_uploader, viewer_of
from portal.deps import Db, KafkaProducer, Layout, SettingsDep, Storage
from portal.errors import NotFound
from portal.files.rungs import download_path, is_cmaf_rung
from portal.jobs import request_job
from portal.templating import action_result
from portal.videos.access import download_name, visible_video

__all__ = ["VideoPages"]

DOWNLOAD_TTL = timedelta(minutes=15)
log = get_logger("vidflow.portal")


def _told(text: str, status_code: int = HTTP_201_CREATED) -> Template:
    """An answer for the page's action buttons: the fragment they show in place."""
    return action_result(text, status_code)


class VideoPages(Controller):
    """Pages of videos and the actions on one video."""

    include_in_schema = False

    @get("/")
    async def videos(
        self,
        request: HTMXRequest,
        db: Db,
        status: FromQuery[str] = "",
        q: FromQuery[str] = "",
        page: FromQuery[int] = 1,
    ) -> Template:
        """Every video with live progress; an HTMX request gets only the table body."""
        listing = await queries.video_page(
            db, status, q.strip(), page, viewer_of(request).owner_scope
        )
        context = {
            "listing": listing,
            "status": status,
            "q": q,
            "rendered_at": f"{time.time():.3f}",
        }
        if request.htmx:
            return HTMXTemplate(template_name="_video_table.html", context=context)
        return Template(template_name="videos.html", context=context)

    @get("/videos/{video_id:str}")
    async def video(
        self,
        request: HTMXRequest,
        db: Db,
        settings: SettingsDep,
        storage: Storage,
        layout: Layout,
        video_id: FromPath[str],
    ) -> Template:
        """A video: probe, source, manifest, renditions, player, timeline."""
        detail = await queries.video_detail(db, video_id, viewer_of(request).owner_scope)
        if detail is None:
            raise NotFound(f"no video {video_id}")
        v = detail.video
        downloads = {
            r.height: download_path(v.id, r.height)
            if is_cmaf_rung(layout, v.id, r)  # video only: the portal joins its audio in
            else storage.presigned_get_object(
                settings.storage.bucket,
                r.key,
                expires=DOWNLOAD_TTL,
                response_headers={
                    "response-content-disposition": (
                        "attachment; filename="
                        f'"{download_name(v.filename or v.id, r.height, r.key)}"'
                    )
                },
            )  # signed locally (the region is configured): no request to the store
            for r in detail.renditions
        }
        player = await _player(storage, settings.storage.bucket, layout, v.id, v.master, v.job_id)
        return Template(
            template_name="video.html",
            context={
                "d": detail,
                "player": player,
                "timeline": detail.timeline,
                "downloads": downloads,
                "profiles": list(settings.transcode.profiles),
                "default_profile": settings.transcode.default_profile,
                "can_act": viewer_of(request).can_upload,
                "rendered_at": f"{time.time():.3f}",
                "bucket": settings.storage.bucket,
            },
        )

    @post("/videos/{video_id:str}/cancel", guards=[requires_uploader])
    async def cancel(
        self,
        request: HTMXRequest,
        db: Db,
        settings: SettingsDep,
        producer: KafkaProducer,
        video_id: FromPath[str],
    ) -> Template:
        """Ask the transcode flow to stop this video's job."""
        await visible_video(db, request, video_id)
        event = ev.TranscodeCancel(id=ev.event_id("cancel", video_id, ev.now()), video_id=video_id)
        try:
            produce_event(producer, settings.kafka.topic_jobs, event)
            await asyncio.to_thread(flush_or_raise, producer)
        except Exception as exc:  # noqa: BLE001 - the button says what failed, the log says why
            log.warning("cancel not sent", video_id=video_id, error=f"{type(exc).__name__}: {exc}")
            reason = public_reason("could not ask for the cancel", exc)
            return _told(reason, HTTP_503_SERVICE_UNAVAILABLE)
        return _told("Cancel requested.")

    @post("/videos/{video_id:str}/reprocess", guards=[requires_uploader])
    async def reprocess(
        self,
        request: HTMXRequest,
        db: Db,
        settings: SettingsDep,
        producer: KafkaProducer,
        video_id: FromPath[str],
    ) -> Template:
        """Run the ladder again from the verified source, with the profile chosen in the form."""
        row = await visible_video(db, request, video_id)
        form = await request.form()
        profile = str(form.get("profile") or "")
        try:
            requested = await request_job(settings, row, profile, producer)
        except HTTPException as exc:
            return _told(str(exc.detail), exc.status_code)
        except Exception as exc:  # noqa: BLE001 - Kafka down: the button says so, the log says why
            log.warning(
                "job not requested", video_id=video_id, error=f"{type(exc).__name__}: {exc}"
            )
            reason = public_reason("could not request the job", exc)
            return _told(reason, HTTP_503_SERVICE_UNAVAILABLE)
        return _told(
            f"Reprocess requested with profile {requested.profile} (job {requested.job_id})."
        )


async def _player(
    storage: Minio, bucket: str, layout: ObjectLayout, video_id: str, master: str, job_id: str
) -> dict[str, str]:
    """What the player loads (keys under the video's files route; "" when nothing plays yet):
    ``hls``, the master the projection knows (an old video's TS master too) or, while a job runs,
    the growing one once its first rung is up; ``dash``, the MPD beside a CMAF master."""
    if not master and job_id:
        live = layout.hls_master(video_id)
        try:
            await asyncio.to_thread(storage.stat_object, bucket, live)
            master = live
        except S3Error:
            pass  # no rung up yet: the page shows the player when reloaded
    dash = layout.dash_manifest(video_id) if master == layout.hls_master(video_id) else ""
    return {"hls": master, "dash": dash}
