"""Live updates: the LISTEN hub (:mod:`portal.live.hub`) and the server-sent-event streams
(:mod:`portal.live.streams`)."""

from portal.live.hub import RESYNC, NotifyHub

__all__ = ["RESYNC", "NotifyHub"]
