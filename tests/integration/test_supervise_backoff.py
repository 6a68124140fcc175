"""supervisord as `vidflow up` configures it, with a program that fails at once for a while (as
one does while PostgreSQL, Kafka or MinIO is away): it is retried at a steady pace, never put
into FATAL, and counted as restarted. A real supervisord, no services needed."""

from __future__ import annotations

import itertools
import os
import re
import sys
import time
from pathlib import Path

from vidflow.supervise import Program, SupervisorPaths, apply_config, program_states, shutdown

FAILURES = 4  # supervisord's default startretries is 3: more than that would end in FATAL

# The count is written beside the counter and renamed over it: the test reads it while the
# program runs, and a plain write_text shows an empty file between its truncate and its write.
FLAKY = """
import os, pathlib, sys, time
counter = pathlib.Path(sys.argv[1])
tries = int(counter.read_text()) + 1 if counter.exists() else 1
pathlib.Path(f"{counter}.new").write_text(str(tries))
os.replace(f"{counter}.new", counter)
if tries <= int(sys.argv[2]):
    sys.exit(1)  # the service it needs is not there yet
time.sleep(600)
"""


def test_a_program_failing_at_once_is_retried_steadily_and_never_fatal(tmp_path: Path) -> None:
    paths = SupervisorPaths(tmp_path / "home")
    counter = tmp_path / "tries"
    program = Program(
        "flaky", [sys.executable, "-c", FLAKY, str(counter), str(FAILURES)], dict(os.environ)
    )
    apply_config(paths, [program], tmp_path)
    try:
        deadline = time.monotonic() + 40
        states = program_states(paths)
        while time.monotonic() < deadline:
            states = program_states(paths)
            if states[0].state == "FATAL" or (
                states[0].state == "RUNNING"
                and counter.exists()
                and int(counter.read_text()) > FAILURES
            ):
                break
            time.sleep(0.3)
        time.sleep(2)  # it stays up
        [state] = program_states(paths)
        assert state.state == "RUNNING", state
        assert state.restarts == FAILURES
        assert int(counter.read_text()) == FAILURES + 1
        # the pace of the tries does not slow down (supervisord's own backoff adds 1 s a try)
        log = paths.log.read_text()
        stamps = [
            time.mktime(time.strptime(s.split(",")[0], "%Y-%m-%d %H:%M:%S"))
            + int(s.split(",")[1]) / 1000
            for s in re.findall(r"^(\S+ \S+) INFO spawned: 'flaky'", log, re.MULTILINE)
        ]
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert len(gaps) == FAILURES and max(gaps) < 3.5, gaps
    finally:
        shutdown(paths)
    assert program_states(paths) == []
