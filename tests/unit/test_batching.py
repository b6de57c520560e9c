"""AIMD batch sizing: grows while under the objective, backs off above it, stays in bounds."""

from __future__ import annotations

import pytest

from features.errors import EddyError
from stream.engine.batching import AdaptiveBatchSize

pytestmark = pytest.mark.unit


def test_it_settles_where_a_batch_just_fits_the_objective():
    """With a batch costing 0.1 ms per record and a 20 ms objective, the limit ends near 200."""
    b = AdaptiveBatchSize(slo_ms=20.0, start=8, step=8, highest=4096)
    for _ in range(2000):
        n = b.limit  # overload: a full batch is always waiting
        b.observe(n=n, elapsed_ms=0.1 * n)
    assert 170 <= b.limit <= 208


def test_a_batch_over_the_objective_always_shrinks_the_limit():
    b = AdaptiveBatchSize(slo_ms=5.0, start=3, step=1, backoff=0.9, lowest=1)
    b.observe(n=3, elapsed_ms=9.0)  # int(3 * 0.9) == 2; never stuck at the same limit
    assert b.limit == 2
    for _ in range(5):
        b.observe(n=1, elapsed_ms=9.0)
    assert b.limit == 1


def test_batches_below_the_limit_do_not_grow_it_and_bounds_hold():
    b = AdaptiveBatchSize(slo_ms=20.0, start=16, step=8, highest=20)
    b.observe(n=4, elapsed_ms=1.0)
    assert b.limit == 16
    b.observe(n=16, elapsed_ms=1.0)
    b.observe(n=24, elapsed_ms=1.0)
    assert b.limit == 20


@pytest.mark.parametrize("kw", [dict(slo_ms=0), dict(slo_ms=float("nan")), dict(slo_ms=5, lowest=0),
                                dict(slo_ms=5, lowest=9, highest=8), dict(slo_ms=5, step=0),
                                dict(slo_ms=5, backoff=1.0)])
def test_bad_parameters_are_refused(kw):
    with pytest.raises(EddyError):
        AdaptiveBatchSize(**kw)
