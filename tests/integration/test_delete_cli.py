"""``vidflow delete``: asks before it sends, produces ``video.delete`` (operator: ``admin``),
and ``--wait`` ends on the ``video.deleted`` that answers it (real Kafka)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from connectors.kafka import flush_or_raise, make_producer, produce_event
from core import events as ev
from core.settings import Settings, get_settings, settings_environ
from tests.flows import TopicReader
from vidflow import delete as deletion

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_settings(
    isolated_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """The command reads its settings from the environment, as when run from a shell."""
    for name, value in settings_environ(isolated_settings).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield isolated_settings
    get_settings.cache_clear()


def test_delete_asks_first_then_produces_video_delete(cli_settings: Settings) -> None:
    jobs = TopicReader(cli_settings, cli_settings.kafka.topic_jobs)
    runner = CliRunner()
    declined = runner.invoke(deletion.delete_command, ["v-1"], input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    bad = runner.invoke(deletion.delete_command, ["../etc", "--yes"])
    assert bad.exit_code == 2 and "not a video id" in bad.output
    sent = runner.invoke(deletion.delete_command, ["v-2", "--yes"])
    assert sent.exit_code == 0 and "delete requested: video v-2" in sent.output
    [event] = jobs.wait_for(lambda es: len(es) >= 1, timeout=30)
    jobs.poll(2.0)
    jobs.close()
    assert len(jobs.events) == 1  # the declined and the refused one sent nothing
    assert isinstance(event, ev.VideoDelete)
    assert (event.video_id, event.requested_by) == ("v-2", "admin")


def test_wait_ends_on_the_video_deleted_that_answers_the_delete(cli_settings: Settings) -> None:
    request = deletion.request_delete(cli_settings, "v-3")
    producer = make_producer(cli_settings.kafka)

    def answer() -> None:
        time.sleep(1.0)
        other = ev.VideoDeleted(id="d-0", video_id="v-3", run="another-delete", seq=1)
        mine = ev.VideoDeleted(
            id=ev.event_id(request.id, "video.deleted"), video_id="v-3", run=request.id, seq=1
        )
        for event in (other, mine):
            produce_event(producer, cli_settings.kafka.topic_status, event)
        flush_or_raise(producer)

    thread = threading.Thread(target=answer)
    thread.start()
    deleted = deletion.wait_deleted(cli_settings, request, timeout=30)
    thread.join()
    assert deleted is not None and deleted.run == request.id and deleted.id != "d-0"
    nothing = deletion.wait_deleted(
        cli_settings, ev.VideoDelete(id="never", video_id="v-4"), timeout=2
    )
    assert nothing is None
