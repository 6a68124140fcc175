"""``vidflow replay``: reprocess videos, rerun a flow from the beginning, resend dead letters.

What each guarantees is in the README ("Replay"). In short: a reprocess is a new job per video
(``core.jobs``), whose outputs land under the same keys with the same content plus any rung the
profile gained; a flow rerun starts from a fresh recovery store, so the flow reads its input
topics from offset 0 again and re-derives the same ids (the projector drops what it has); a
resent dead letter is its original bytes on its original topic, recorded in the portal's
``dead_letter_replays`` exactly as the portal's own Replay button records it.

The roof may import the portal: the selections are the portal's queries over its projection.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from confluent_kafka import Producer
from rich.console import Console
from rich.progress import Progress
from rich.table import Column, Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from connectors.kafka import deliver, end_offsets, make_producer
from core.errors import public_reason
from core.jobs import NoVerifiedSource, UnknownProfile, reprocess_request
from core.logs import get_logger
from core.settings import KafkaSettings, Settings, get_settings
from portal.jobs import select_videos
from portal.models import DeadLetterRow, Video
from portal.operations import replay_letter
from vidflow.stack.process import running_pid

__all__ = [
    "FLOWS",
    "LetterSelection",
    "VideoSelection",
    "flow_running",
    "parse_since",
    "replay",
    "reprocess",
    "resend_dead_letters",
    "reset_flow",
]

log = get_logger("vidflow.replay")
out = Console()
err = Console(stderr=True)

# Each flow's input topics (``dataflows/*_flow.py``: ``read_events(..., [topics])``).
FLOWS: dict[str, Callable[[KafkaSettings], list[str]]] = {
    "ingest": lambda k: [k.topic_file_events, k.topic_uploads],
    "transcode": lambda k: [k.topic_jobs],
}
_RELATIVE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


# ---------------------------------------------------------------- selections


@dataclass(frozen=True)
class VideoSelection:
    """Which videos to reprocess: one, those created since a moment, those in a status, or all
    (every field empty); ``since`` and ``status`` combine."""

    video_id: str | None = None
    since: float | None = None
    status: str | None = None


@dataclass(frozen=True)
class LetterSelection:
    """Which dead letters to resend: one, those of a stage, or all (every field empty)."""

    letter_id: str | None = None
    stage: str | None = None


def parse_since(text: str, now: datetime | None = None) -> float:
    """``2h``/``30m``/``1d``/``90s`` ago, or an ISO 8601 moment (UTC when it has no zone)."""
    found = _RELATIVE.match(text.strip())
    if found:
        ago = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
        return ((now or datetime.now(UTC)) - ago).timestamp()
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is neither 2h/30m/1d nor an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@asynccontextmanager
async def _sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A short-lived pool for one command, disposed in the loop that opened it."""
    engine = create_async_engine(settings.postgres.url, pool_pre_ping=True)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


# ---------------------------------------------------------------- reprocess


@dataclass
class ReprocessReport:
    """What a reprocess did: videos selected, requests sent, and those skipped with why."""

    selected: list[Video]
    sent: list[str]
    skipped: dict[str, str]


async def reprocess(
    settings: Settings,
    selection: VideoSelection,
    profile: str = "",
    *,
    dry_run: bool = False,
    producer: Producer | None = None,
    progress: Progress | None = None,
) -> ReprocessReport:
    """One ``transcode.requested`` (reason ``reprocess``, a fresh job id) per selected video.

    Each is acknowledged by the broker before the next is sent, so the progress shown is what
    Kafka holds. Videos without a verified source are skipped; an unknown profile refuses all.
    """
    if (profile or settings.transcode.default_profile) not in settings.transcode.profiles:
        raise UnknownProfile(f"unknown profile {profile!r}")
    async with _sessions(settings) as maker, maker() as session:
        rows = await select_videos(
            session, video_id=selection.video_id, since=selection.since, status=selection.status
        )
    report = ReprocessReport(selected=rows, sent=[], skipped={})
    if dry_run or not rows:
        return report
    producer = producer or make_producer(settings.kafka)
    task = progress.add_task("reprocess", total=len(rows)) if progress else None
    for row in rows:
        try:
            requested = reprocess_request(
                settings, video_id=row.id, source_key=row.source_key, size=row.size,
                sha256=row.sha256, probe=row.probe, profile=profile, filename=row.filename,
                owner=row.owner,
            )  # fmt: skip
        except NoVerifiedSource:
            report.skipped[row.id] = "no verified source yet"
        else:
            await asyncio.to_thread(deliver, producer, settings.kafka.topic_jobs, requested)
            report.sent.append(row.id)
            log.info("reprocess requested", video_id=row.id, job_id=requested.job_id)
        if progress is not None and task is not None:
            progress.advance(task)
    return report


# ---------------------------------------------------------------- flow rerun


def flow_pidfile(settings: Settings, flow: str) -> Path:
    """Where ``vidflow up`` records the flow's pid (``vidflow.pipeline.start_pipeline``)."""
    return Path(settings.home).resolve() / "run" / f"app-{flow}.pid"


def flow_running(settings: Settings, flow: str) -> int | None:
    """The pid of ``flow`` if it runs. The one place that knows how a running flow is found."""
    return running_pid(flow_pidfile(settings, flow))


def recovery_dir(settings: Settings, flow: str) -> Path:
    """The flow's Bytewax recovery store (``vidflow.pipeline._flow``)."""
    return Path(settings.home).resolve() / "recovery" / flow


class FlowRunning(RuntimeError):
    """The flow runs: its recovery store is in use and must not be touched."""


@dataclass(frozen=True)
class FlowReset:
    """What a rerun did (or would do): the store, where it went, the offsets to re-read."""

    recovery: Path
    existed: bool
    moved_to: Path | None
    deleted: bool
    ends: dict[str, dict[int, int]]


def reset_flow(
    settings: Settings, flow: str, *, dry_run: bool = False, delete: bool = False
) -> FlowReset:
    """Put the flow's recovery store aside (or delete it) so its next start reads its input
    topics from offset 0 into a fresh store (``vidflow up`` makes one when there is none).

    Refuses (:class:`FlowRunning`) while the flow runs.
    """
    pid = flow_running(settings, flow)
    if pid is not None:
        raise FlowRunning(f"the {flow} flow is running (pid {pid}): stop it first (vidflow down)")
    recovery = recovery_dir(settings, flow)
    ends = end_offsets(settings.kafka, FLOWS[flow](settings.kafka))
    existed = recovery.exists()
    moved_to: Path | None = None
    if existed and not delete:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        moved_to = recovery.with_name(f"{flow}.replaced-{stamp}")
    if not dry_run and existed:
        if moved_to is not None:
            recovery.rename(moved_to)
        else:
            shutil.rmtree(recovery)
        log.info("flow recovery reset", flow=flow, moved_to=str(moved_to or ""), deleted=delete)
    return FlowReset(recovery, existed, moved_to, existed and delete, ends)


# ---------------------------------------------------------------- dead letters


@dataclass
class ResendReport:
    """What a resend did: letters selected, resent, and those that failed with the reason."""

    selected: list[DeadLetterRow]
    resent: list[str]
    failed: dict[str, str]


async def resend_dead_letters(
    settings: Settings,
    selection: LetterSelection,
    *,
    dry_run: bool = False,
    producer: Producer | None = None,
    progress: Progress | None = None,
) -> ResendReport:
    """Each selected dead letter's raw bytes to its source topic, with its original key, through
    the portal's own replay (``portal.operations.replay_letter``), which records it."""
    async with _sessions(settings) as maker:
        async with maker() as session:
            query = select(DeadLetterRow).order_by(DeadLetterRow.ts, DeadLetterRow.id)
            if selection.letter_id is not None:
                query = query.where(DeadLetterRow.id == selection.letter_id)
            if selection.stage is not None:
                query = query.where(DeadLetterRow.stage == selection.stage)
            letters = list((await session.execute(query)).scalars())
        report = ResendReport(selected=letters, resent=[], failed={})
        if dry_run or not letters:
            return report
        producer = producer or make_producer(settings.kafka)
        task = progress.add_task("dead letters", total=len(letters)) if progress else None
        for letter in letters:
            _, error = await replay_letter(settings, maker, producer, letter.id)
            if error:
                report.failed[letter.id] = error
            else:
                report.resent.append(letter.id)
            if progress is not None and task is not None:
                progress.advance(task)
    return report


# ---------------------------------------------------------------- the command


def _id_column() -> Column:
    """Ids whole on one line (they are copied into the next command); other columns wrap."""
    return Column("id", no_wrap=True, min_width=36)


def _progress() -> Progress:
    return Progress(console=err, transient=False)


def _one_of(**given: object) -> None:
    chosen = [name for name, value in given.items() if value not in (None, False)]
    if len(chosen) != 1:
        names = " | ".join(f"--{n.replace('_', '-')}" for n in given)
        raise click.UsageError(f"give exactly one of {names}")


def _fail(what: str, exc: Exception) -> click.ClickException:
    log.warning(what, error=f"{type(exc).__name__}: {exc}")
    return click.ClickException(public_reason(what, exc))


@click.group("replay")
def replay() -> None:
    """Reprocess videos, rerun a flow from the beginning, resend dead letters."""


@replay.command("reprocess")
@click.option("--video", "video_id", help="One video id.")
@click.option("--all", "everything", is_flag=True, help="Every video.")
@click.option("--since", help="Videos created since: 2h, 30m, 1d or an ISO 8601 time (UTC).")
@click.option("--status", help="Videos in this status (e.g. failed).")
@click.option("--profile", default="", help="Profile to make (default: the default profile).")
@click.option("--dry-run", is_flag=True, help="List the videos; send nothing.")
def reprocess_command(
    video_id: str | None,
    everything: bool,
    since: str | None,
    status: str | None,
    profile: str,
    dry_run: bool,
) -> None:
    """Ask for a new transcode job for the selected videos (one request each)."""
    if not (since and status):  # --since and --status combine; otherwise exactly one
        _one_of(video=video_id, all=everything, since=since, status=status)
    settings = get_settings()
    selection = VideoSelection(video_id, parse_since(since) if since else None, status)
    try:
        with nullcontext() if dry_run else _progress() as progress:
            report = asyncio.run(
                reprocess(settings, selection, profile, dry_run=dry_run, progress=progress)
            )
    except UnknownProfile as exc:
        raise click.UsageError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - the public reason shown, the detail logged
        raise _fail("reprocess stopped", exc) from None
    table = Table(_id_column(), "filename", "status")
    for row in report.selected:
        table.add_row(row.id, row.filename, row.status)
    if dry_run:
        out.print(table)
        out.print(f"dry run: {len(report.selected)} video(s) would be reprocessed; nothing sent")
        return
    for video, why in report.skipped.items():
        err.print(f"skipped {video}: {why}")
    out.print(
        f"reprocess: {len(report.sent)} request(s) sent to {settings.kafka.topic_jobs}, "
        f"{len(report.skipped)} skipped, {len(report.selected)} selected"
    )


@replay.command("flow")
@click.argument("flow", type=click.Choice(sorted(FLOWS)))
@click.option("--dry-run", is_flag=True, help="Say what would be done; touch nothing.")
@click.option("--delete", is_flag=True, help="Delete the recovery store instead of moving it.")
@click.option("--yes", is_flag=True, help="Do not ask before deleting.")
def flow_command(flow: str, dry_run: bool, delete: bool, yes: bool) -> None:
    """Rerun FLOW from the beginning of its input topics into a fresh recovery store."""
    settings = get_settings()
    pid = flow_running(settings, flow)
    if pid is not None:
        err.print(f"refused: the {flow} flow is running (pid {pid}); stop it first (vidflow down)")
        raise SystemExit(2)
    if delete and not dry_run and not yes:
        click.confirm(f"Delete the {flow} flow's recovery store for good?", abort=True)
    try:
        done = reset_flow(settings, flow, dry_run=dry_run, delete=delete)
    except FlowRunning as exc:  # started meanwhile
        err.print(f"refused: {exc}")
        raise SystemExit(2) from None
    except Exception as exc:  # noqa: BLE001 - the public reason shown, the detail logged
        raise _fail(f"could not reset the {flow} flow", exc) from None
    verb = "would" if dry_run else "did"
    if not done.existed:
        out.print(f"{flow}: no recovery store yet; it already starts from the beginning")
    elif done.moved_to is not None:
        out.print(f"{flow}: {verb} move {done.recovery.name} aside to {done.moved_to.name}")
    else:
        out.print(f"{flow}: {verb} delete its recovery store")
    for topic, partitions in done.ends.items():
        total = sum(partitions.values())
        ends = ", ".join(f"{p}:{end}" for p, end in sorted(partitions.items()))
        out.print(f"  re-reads {topic} from offset 0: {total} message(s) (ends {ends})")
    if not dry_run:
        out.print(f"start it again (vidflow up) to rerun {flow} from the beginning")


@replay.command("dead-letters")
@click.option("--id", "letter_id", help="One dead letter id.")
@click.option("--all", "everything", is_flag=True, help="Every dead letter.")
@click.option("--stage", help="The dead letters of this stage (e.g. consume, decode).")
@click.option("--dry-run", is_flag=True, help="List the dead letters; send nothing.")
def dead_letters_command(
    letter_id: str | None, everything: bool, stage: str | None, dry_run: bool
) -> None:
    """Resend dead letters' original bytes to their source topic, once the cause is fixed."""
    _one_of(id=letter_id, all=everything, stage=stage)
    settings = get_settings()
    try:
        with nullcontext() if dry_run else _progress() as progress:
            report = asyncio.run(
                resend_dead_letters(
                    settings, LetterSelection(letter_id, stage), dry_run=dry_run,
                    progress=progress,
                )
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the public reason shown, the detail logged
        raise _fail("resend stopped", exc) from None
    if dry_run:
        table = Table(_id_column(), "topic", "stage", "error", "bytes")
        for letter in report.selected:
            table.add_row(
                letter.id, letter.source_topic, letter.stage, letter.error, str(len(letter.raw))
            )
        out.print(table)
        out.print(f"dry run: {len(report.selected)} dead letter(s) would be resent; nothing sent")
        return
    for failed_id, why in report.failed.items():
        err.print(f"not resent {failed_id}: {why}")
    out.print(
        f"dead letters: {len(report.resent)} resent, {len(report.failed)} failed, "
        f"{len(report.selected)} selected"
    )
    if report.failed:
        raise SystemExit(1)
