"""The project's base exception.

It lives in ``features`` because that is the lowest layer: ``learners``,
``bandits`` and ``stream`` all may import it, and it imports nothing.
Each package derives its own errors from it, and every message names the
parameter and the bad value.
"""


class EddyError(Exception):
    """Base of every error Eddy raises on purpose."""


class FeatureError(EddyError, ValueError):
    """Bad feature-net configuration, input or artifact."""
