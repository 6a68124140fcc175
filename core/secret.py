"""The type of every credential in the settings: a value that never shows itself.

Kept apart from the settings so anything holding a password (the stack's credentials file,
a client's login) can take the type without the whole configuration.
"""

from __future__ import annotations

import hmac
from typing import final

__all__ = ["Secret"]


@final
class Secret:
    """A credential that never shows its value: not in ``str``, ``repr``, f-strings, logs or
    msgspec encoding. It is not a ``str``, so nothing can take its value by accident (a join, a
    concatenation, a client argument): :meth:`reveal` is the only way, called where it is sent.
    """

    __slots__ = ("_value",)
    MASK = "**********"

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a Secret holds text, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """The plain value, for the one place that must send it."""
        value: str = object.__getattribute__(self, "_value")
        return value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Secret is immutable")

    def __repr__(self) -> str:
        return f"Secret('{self.MASK}')"

    def __str__(self) -> str:
        return self.MASK

    def __format__(self, spec: str) -> str:
        return format(self.MASK, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash((Secret, self.reveal()))

    def __bool__(self) -> bool:
        return bool(self.reveal())

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # settings are handed to child processes; the default slot pickling would hit __setattr__
        return (Secret, (self.reveal(),))
