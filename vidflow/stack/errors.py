"""The one error the stack raises: something the operator must fix, with the fix named."""

from __future__ import annotations

__all__ = ["StackError"]


class StackError(RuntimeError):
    """A service could not be installed or started; the message says why and what to do."""
