from features.errors import EddyError


class BanditError(EddyError, ValueError):
    """Bad policy parameter, score vector or off-policy-estimation input."""
