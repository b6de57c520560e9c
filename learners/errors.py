from features.errors import EddyError


class LearnerError(EddyError, ValueError):
    """Bad learner hyperparameter, input or serialised state."""
