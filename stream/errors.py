"""Typed errors of the I/O shell that are not about one record's content."""

from __future__ import annotations

from features.errors import EddyError


class StoreAuthFailed(EddyError, PermissionError):
    """Redis refused the ACL user's credentials: a setting to fix, not an outage to wait out."""


class StoreUnavailable(EddyError, ConnectionError):
    """Redis did not answer (down, restarting, unreachable): an outage, not a bad record."""


def redis_failure(exc: Exception) -> StoreUnavailable | StoreAuthFailed:
    """What a redis-py ConnectionError or TimeoutError means. redis-py reports a refused password
    and a certificate it cannot verify as ConnectionErrors too, but no retry fixes those: they
    become :class:`StoreAuthFailed`."""
    import ssl

    from redis.exceptions import AuthenticationError

    if isinstance(exc, AuthenticationError):
        return StoreAuthFailed(f"Redis refused the credentials: {exc} (check EDDY_REDIS_USERNAME and "
                               "EDDY_REDIS_PASSWORD[_FILE])")
    if isinstance(exc.__context__, ssl.SSLCertVerificationError):
        return StoreAuthFailed(f"Redis TLS failed: {exc} (check EDDY_REDIS_CA_FILE)")
    return StoreUnavailable(f"Redis did not answer: {exc}")
