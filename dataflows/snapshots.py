"""Snapshots taken by an older release still resume after an upgrade.

Bytewax recovery pickles each step's state. Unpickling restores only the fields that were there
when the snapshot was taken, so a field added since is simply missing and the first access
raises ``AttributeError`` inside the dataflow. :class:`Resumable` fills such fields with their
declared defaults as the object is restored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["Resumable"]


class Resumable:
    """Mixin for picklable dataclass state: fields missing from an old pickle get defaults."""

    def __setstate__(self, saved: dict[str, Any]) -> None:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            if field.name in saved:
                continue
            if field.default is not dataclasses.MISSING:
                saved[field.name] = field.default
            elif field.default_factory is not dataclasses.MISSING:
                saved[field.name] = field.default_factory()
        self.__dict__.update(saved)
