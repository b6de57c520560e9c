"""The replay package's one exception."""

from features.errors import EddyError


class ReplayError(EddyError, ValueError):
    """A log slice, file or target policy replay cannot use; the message names it and why."""
