"""A flow that makes an event the contract refuses sends a dead letter instead of failing on
the same input at every restart."""

from __future__ import annotations

import msgspec

from core import events as ev
from core.errors import is_public
from dataflows.kafka_io import Outbound, _to_sink


def test_a_refused_event_becomes_a_dead_letter_and_a_valid_one_goes_out() -> None:
    good = ev.IngestStarted(id="e1", video_id="v", run="r", seq=1, origin="watch", filename="a")
    sent = _to_sink(Outbound("t.status", good), "t.dlq")
    assert (sent.topic, sent.key, ev.decode(sent.value)) == ("t.status", b"v", good)

    too_long = msgspec.structs.replace(good, id="e2", filename="n" * 300)  # a path's last part
    sent = _to_sink(Outbound("t.status", too_long), "t.dlq")
    assert sent.topic == "t.dlq" and sent.key == b"v"
    letter = ev.decode(sent.value, "dlq")
    assert isinstance(letter, ev.DeadLetter)
    assert (letter.source_topic, letter.stage) == ("t.status", "produce")
    assert "filename" in letter.error and is_public(letter.error)
    assert msgspec.json.decode(letter.raw)["filename"] == "n" * 300  # kept whole

    other = msgspec.structs.replace(too_long, id="e3")
    assert ev.decode(_to_sink(Outbound("t.status", other), "t.dlq").value).id != letter.id
