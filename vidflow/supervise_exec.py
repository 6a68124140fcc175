"""The start wrapper of every supervised program: load its environment, pause, exec.

supervisord's own backoff grows by one second per quick failure (``startsecs``), so a program
that fails fast while PostgreSQL, Kafka or MinIO is away would wait ever longer between tries.
Pausing a little longer than ``startsecs`` before the exec makes every try count as started:
supervisord then restarts it at once (``autorestart``) and never gives up (no FATAL), so the
program is back within seconds of its service. The argv and environment (with the program's own
Kafka password) come from a 0600 JSON file, so no secret is written into supervisord's config
and no argument needs quoting for it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

__all__ = ["START_PAUSE_SECONDS", "main"]

START_PAUSE_SECONDS = 1.5


def main(args: list[str]) -> None:
    """``python -m vidflow.supervise_exec SPEC_FILE``: exec the spec's argv in its environment."""
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    argv: list[str] = spec["argv"]
    env: dict[str, str] = spec["env"]
    time.sleep(START_PAUSE_SECONDS)
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main(sys.argv[1:])
