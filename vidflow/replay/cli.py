"""The ``vidflow replay`` command group: options in, a progress bar of what the broker
acknowledged, a summary line out; failures shown by their public reason, the detail logged."""

from __future__ import annotations

import asyncio
from contextlib import nullcontext

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Column, Table

from core.errors import public_reason
from core.jobs import UnknownProfile
from core.logs import get_logger
from core.settings import get_settings
from vidflow.replay.dead_letters import resend_dead_letters
from vidflow.replay.flows import FLOWS, FlowRunning, flow_running, reset_flow
from vidflow.replay.reprocess import reprocess
from vidflow.replay.selections import LetterSelection, VideoSelection, parse_since

__all__ = ["replay"]

log = get_logger("vidflow.replay")
out = Console()
err = Console(stderr=True)


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
