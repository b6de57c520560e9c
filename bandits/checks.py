"""Input checks shared by the policies (:mod:`bandits.base`) and the off-policy estimators (:mod:`bandits.ope`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from bandits.errors import BanditError


def finite_array(name: str, value: Any, ndim: int) -> np.ndarray:
    """``value`` as a float64 array of ``ndim`` dimensions holding no NaN or inf, else a
    :class:`BanditError` that names ``name``, the bad value and where it is.

    >>> finite_array("scores", [1, 2], 1)
    array([1., 2.])
    >>> finite_array("scores", [1.0, float("inf")], 1)
    Traceback (most recent call last):
    ...
    bandits.errors.BanditError: scores must be finite; got inf at index [1]
    """
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BanditError(f"{name} must be numeric; got {value!r:.80}") from exc
    if array.ndim != ndim:
        raise BanditError(f"{name} must be {ndim}-D; got shape {array.shape}")
    finite = np.isfinite(array)
    if not finite.all():
        where = np.argwhere(~finite)[0]
        raise BanditError(f"{name} must be finite; got {float(array[tuple(where)])!r} at index {where.tolist()}")
    return array
