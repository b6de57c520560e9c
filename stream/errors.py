"""Typed errors of the I/O shell that are not about one record's content."""

from __future__ import annotations

from features.errors import EddyError


class StoreUnavailable(EddyError, ConnectionError):
    """Redis did not answer (down, restarting, unreachable): an outage, not a bad record."""
