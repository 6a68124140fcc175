"""Dead letters resent: each one's original bytes on its original topic, recorded in the portal's
``dead_letter_replays`` exactly as the portal's own Replay button records it."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Producer
from rich.progress import Progress
from sqlalchemy import select

from connectors.kafka import make_producer
from core.settings import Settings
from portal.models import DeadLetterRow
from portal.operations import replay_letter
from vidflow.replay.selections import LetterSelection, sessions

__all__ = ["ResendReport", "resend_dead_letters"]


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
    async with sessions(settings) as maker:
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
