"""Any status event (or dead letter) that decodes can be stored by the projection.

The contract's bounds exist so a message the projector cannot store never reaches it (issue 9,
observation 6). Hypothesis draws events from the contract's own type information (lengths,
patterns, ranges), at and inside every bound, and applies them to a real PostgreSQL: the only
refusal allowed is the projection's own (:class:`portal.projection.Rejected`: a key not derived
from the video, another owner), never a database error.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from msgspec import inspect as mi
from sqlalchemy import Connection, create_engine

from core import events as ev
from core.layout import ObjectLayout
from core.settings import Settings
from portal.projection import Rejected, apply

pytestmark = pytest.mark.integration

PROJECTED: list[type[ev.Event]] = [
    t for t in ev.TYPES.values() if issubclass(t, ev.StatusBase) or t is ev.DeadLetter
]


def _text(t: mi.StrType) -> st.SearchStrategy[str]:
    low, high = t.min_length or 0, t.max_length or 300
    base = st.from_regex(t.pattern, fullmatch=True) if t.pattern else st.text(max_size=high)
    # the longest value too: a valid piece repeated up to the bound
    longest = base.filter(bool).map(lambda s: (s * high)[:high])
    pattern = re.compile(t.pattern) if t.pattern else None

    def fits(s: str) -> bool:
        return low <= len(s) <= high and (pattern is None or pattern.search(s) is not None)

    return st.one_of(base, longest).filter(fits)


def _number(t: mi.IntType | mi.FloatType) -> st.SearchStrategy[Any]:
    if isinstance(t, mi.IntType):
        low = -(2**63) if t.ge is None else int(t.ge)
        high = 2**63 - 1 if t.le is None else int(t.le)
        return st.one_of(st.sampled_from([low, high]), st.integers(low, high))
    low_f = -1e300 if t.ge is None else float(t.ge)
    high_f = 1e300 if t.le is None else float(t.le)
    return st.one_of(
        st.sampled_from([low_f, high_f]),
        st.floats(low_f, high_f, allow_nan=False, allow_infinity=False),
    )


def strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values of the contract type ``t`` (as JSON builtins), within its bounds."""
    match t:
        case mi.StrType():
            return _text(t)
        case mi.IntType() | mi.FloatType():
            return _number(t)
        case mi.BoolType():
            return st.booleans()
        case mi.NoneType():
            return st.none()
        case mi.LiteralType():
            return st.sampled_from(t.values)
        case mi.BytesType():
            return st.binary(max_size=64).map(lambda b: msgspec.json.decode(msgspec.json.encode(b)))
        case mi.ListType():
            return st.lists(strategy(t.item_type), max_size=min(t.max_length or 4, 4))
        case mi.DictType():
            keys, values = strategy(t.key_type), strategy(t.value_type)
            return st.dictionaries(keys, values, max_size=min(t.max_length or 4, 4))
        case mi.UnionType():
            return st.one_of(*(strategy(member) for member in t.types))
        case mi.StructType():
            required = {f.encode_name: strategy(f.type) for f in t.fields if f.required}
            optional = {f.encode_name: strategy(f.type) for f in t.fields if not f.required}
            return st.fixed_dictionaries(required, optional=optional)
        case _:
            raise TypeError(f"no strategy for {t!r}")


@functools.cache
def body_of(cls: type[ev.Event]) -> st.SearchStrategy[dict[str, Any]]:
    """The strategy of ``cls``'s bodies, built once: building it (regexes, filters, nested
    strategies) costs far more than drawing from it, and it is the same for every draw."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return strategy(info)


@st.composite
def events(draw: st.DrawFn, layout: ObjectLayout) -> ev.AnyEvent:
    cls = draw(st.sampled_from(PROJECTED))
    body = dict(draw(body_of(cls)))
    body["type"] = cls.__struct_config__.tag
    if "rendition" in body and draw(st.booleans()):  # derived keys: reach the renditions table
        video, height = body["video_id"], body["rendition"]["height"]
        body["rendition"] |= {"key": layout.rendition(video, height),
                              "hls": layout.hls_playlist(video, height)}  # fmt: skip
    decoded = ev.try_decode(msgspec.json.encode(body))
    assume(not isinstance(decoded, ev.DecodeError))  # only what decodes is the property's
    assert not isinstance(decoded, ev.DecodeError)
    return decoded


@pytest.fixture
def connection(portal_settings: Settings) -> Iterator[Connection]:
    engine = create_engine(portal_settings.postgres.url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def test_every_event_that_decodes_can_be_stored(
    portal_settings: Settings, connection: Connection
) -> None:
    layout = ObjectLayout(portal_settings.storage)

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.lists(events(layout), min_size=1, max_size=3), st.booleans())
    def stored(drawn: list[ev.AnyEvent], one_video: bool) -> None:
        if one_video:  # several events of one video: updates of an existing row too
            first = getattr(drawn[0], "video_id", "v")
            drawn = [
                msgspec.structs.replace(e, video_id=first) if isinstance(e, ev.StatusBase) else e
                for e in drawn
            ]
        transaction = connection.begin()
        try:
            for event in drawn:
                # the projection's own refusal is allowed (the projector dead-letters it)
                with contextlib.suppress(Rejected), connection.begin_nested():
                    apply(connection, event, layout)
        finally:
            transaction.rollback()  # every example starts from an empty projection

    stored()
