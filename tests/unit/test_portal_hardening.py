"""Pure pieces of the portal's hardening: whose address a request is, the login throttle's
arithmetic, and how file names are checked and shown."""

from __future__ import annotations

import pytest
from litestar.datastructures import Headers

from portal.auth.forwarded import TrustedProxies, client_address
from portal.auth.throttle import Attempt, LoginThrottle, Refusal
from portal.filenames import (
    MAX_FILENAME_CHARS,
    InvalidFilename,
    check_upload_filename,
    display_filename,
)

PROXIES = TrustedProxies.parse(["10.0.0.1", "192.168.0.0/16", "::1"])


def _headers(**values: str) -> Headers:
    return Headers({name.replace("_", "-"): value for name, value in values.items()})


def test_forwarded_headers_from_an_untrusted_peer_are_ignored() -> None:
    spoofed = _headers(x_forwarded_for="1.2.3.4", forwarded="for=5.6.7.8")
    assert client_address("203.0.113.9", spoofed, PROXIES) == "203.0.113.9"
    assert client_address("127.0.0.1", spoofed, TrustedProxies()) == "127.0.0.1"  # none default


def test_a_trusted_proxy_names_the_client_rightmost_untrusted_first() -> None:
    # the client wrote "6.6.6.6" itself; the proxies appended what they saw, right to left
    chain = _headers(x_forwarded_for="6.6.6.6, 198.51.100.7, 192.168.3.4")
    assert client_address("10.0.0.1", chain, PROXIES) == "198.51.100.7"
    assert client_address("10.0.0.1", _headers(), PROXIES) == "10.0.0.1"  # no header: the peer
    # an unreadable hop stops the walk at the last address a trusted proxy vouched for
    assert client_address("10.0.0.1", _headers(x_forwarded_for="bogus"), PROXIES) == "10.0.0.1"


def test_the_standard_forwarded_header_wins_and_is_parsed() -> None:
    both = _headers(
        forwarded='for=192.0.2.60;proto=https, for="[2001:db8::17]:4711"',
        x_forwarded_for="7.7.7.7",
    )
    assert client_address("::1", both, PROXIES) == "2001:db8::17"
    assert client_address("::1", _headers(forwarded="for=192.0.2.60:8080"), PROXIES) == (
        "192.0.2.60"
    )


def test_a_malformed_trusted_proxy_setting_fails_at_start() -> None:
    with pytest.raises(ValueError, match="not an address"):
        TrustedProxies.parse(["10.0.0.1", "proxy.example"])


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _fail(throttle: LoginThrottle, address: str, user: str) -> Attempt | Refusal:
    return throttle.begin(address, user)  # never told it succeeded: a failure


def test_the_delay_grows_after_the_free_failures_and_is_capped() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_per_account=3, free_per_address=100, base=2, cap=60, clock=clock)
    assert all(isinstance(_fail(throttle, f"a{i}", "alice"), Attempt) for i in range(3))
    waits = []
    for _ in range(6):
        refused = throttle.begin("another", "alice")
        assert isinstance(refused, Refusal)
        waits.append(refused.retry_after)
        clock.now += refused.retry_after
        assert isinstance(_fail(throttle, "another", "ALICE "), Attempt)  # same account
    assert waits == [2, 4, 8, 16, 32, 60]


def test_the_address_limit_spans_accounts_and_a_success_resets_only_the_account() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_per_account=2, free_per_address=4, base=10, clock=clock)
    for name in ("a", "b", "c", "d"):
        assert isinstance(_fail(throttle, "198.51.100.1", name), Attempt)
    assert isinstance(throttle.begin("198.51.100.1", "e"), Refusal)  # a fifth name: too many
    assert isinstance(throttle.begin("198.51.100.2", "e"), Attempt)  # another address may

    first = _fail(throttle, "198.51.100.3", "bob")
    assert isinstance(first, Attempt)
    ok = throttle.begin("198.51.100.3", "bob")
    assert isinstance(ok, Attempt)
    throttle.succeeded(ok)
    assert isinstance(_fail(throttle, "198.51.100.3", "bob"), Attempt)  # the account is fresh


def test_concurrent_attempts_are_counted_before_their_password_is_checked() -> None:
    throttle = LoginThrottle(free_per_account=2, free_per_address=100, clock=Clock())
    started = [throttle.begin(f"10.1.1.{i}", "carol") for i in range(10)]  # none finished yet
    assert sum(isinstance(a, Attempt) for a in started) == 2


def test_idle_keys_are_forgotten() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_per_account=1, base=1, forget_after=60, clock=clock)
    _fail(throttle, "x", "dave")
    clock.now += 61
    assert isinstance(throttle.begin("y", "erin"), Attempt)
    assert len(throttle._records) == 2  # dave's and x's records went


def test_display_filename_drops_controls_and_bidi_overrides_and_is_bounded() -> None:
    assert display_filename("evil\u202egpj.exe") == "evilgpj.exe"
    assert display_filename("a\u2066b\u2069c\u202ad\x00e\nf\x7f") == "abcdef"
    long = display_filename("x" * 200_000)
    assert len(long) == MAX_FILENAME_CHARS and long.endswith("…")
    assert display_filename(None) == "" and display_filename("holiday.mp4") == "holiday.mp4"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("a\x00b.mp4", "control character"),
        ("line\nbreak.mp4", "control character"),
        ("\ud800.mp4", "control character"),
        ("\u202e", "empty"),
        ("x" * 256, "longer than 255"),
    ],
)
def test_an_upload_filename_is_refused_when_it_cannot_be_kept(raw: str, reason: str) -> None:
    with pytest.raises(InvalidFilename, match=reason):
        check_upload_filename(raw)


def test_an_upload_filename_loses_its_bidi_overrides() -> None:
    assert check_upload_filename(" évil\u202egpj.mp4 ") == "évilgpj.mp4"
    assert check_upload_filename("../../etc/passwd holiday.mp4") == "../../etc/passwd holiday.mp4"
