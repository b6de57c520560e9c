"""AIMD batch sizing: grows while under the objective, backs off above it, stays in bounds."""

from __future__ import annotations

import math

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


def test_a_full_batch_over_the_objective_always_shrinks_the_limit():
    b = AdaptiveBatchSize(slo_ms=5.0, start=3, step=1, backoff=0.9, lowest=1)
    b.observe(n=3, elapsed_ms=9.0)  # int(3 * 0.9) == 2; never stuck at the same limit
    assert b.limit == 2
    for _ in range(5):
        b.observe(n=b.limit, elapsed_ms=9.0)
    assert b.limit == 1


def test_a_slow_batch_the_limit_did_not_bind_leaves_it_alone():
    """A batch smaller than the limit that is slow was slowed by something else (a collection, a busy
    core, a Redis stall): cutting the limit for it (Clipper's rule applied to every batch) left the limit
    at 10-14 after a quiet step at 100/s, and the next step at 1,000/s ran in batches capped there,
    each paying the per-batch costs again."""
    b = AdaptiveBatchSize(slo_ms=10.0, start=32, step=8)
    for _ in range(20):
        b.observe(n=1, elapsed_ms=25.0)
    b.observe(n=31, elapsed_ms=40.0)
    assert b.limit == 32
    b.observe(n=32, elapsed_ms=40.0)  # a full batch over the objective: the limit did bind
    assert b.limit == 28


def test_the_cut_is_multiplicative_and_always_at_least_one():
    b = AdaptiveBatchSize(slo_ms=5.0, start=100, backoff=0.5)
    b.observe(n=100, elapsed_ms=6.0)
    assert b.limit == 50
    b = AdaptiveBatchSize(slo_ms=5.0, start=1024, backoff=math.nextafter(1.0, 0.0))
    b.observe(n=1024, elapsed_ms=6.0)  # even the mildest backoff shrinks the limit
    assert b.limit == 1023


def test_a_batch_exactly_at_the_objective_meets_it():
    b = AdaptiveBatchSize(slo_ms=5.0, start=10, step=2)
    b.observe(n=10, elapsed_ms=5.0)
    assert b.limit == 12


def test_defaults():
    b = AdaptiveBatchSize(slo_ms=0.5)  # an objective under a millisecond is allowed
    assert (b.limit, b.step, b.backoff, b.lowest, b.highest) == (32, 8, 0.9, 1, 1024)
    assert AdaptiveBatchSize(slo_ms=5, lowest=7, highest=7).limit == 7  # a fixed batch size


def test_batches_below_the_limit_do_not_grow_it_and_bounds_hold():
    b = AdaptiveBatchSize(slo_ms=20.0, start=16, step=8, highest=20)
    b.observe(n=4, elapsed_ms=1.0)
    assert b.limit == 16
    b.observe(n=16, elapsed_ms=1.0)
    b.observe(n=24, elapsed_ms=1.0)
    assert b.limit == 20


@pytest.mark.parametrize("kw, message", [
    (dict(slo_ms=0), "slo_ms must be a finite number > 0, got 0"),
    (dict(slo_ms=float("nan")), "slo_ms must be a finite number > 0, got nan"),
    (dict(slo_ms=5, lowest=0), "need 1 <= lowest <= highest, got 0, 1024"),
    (dict(slo_ms=5, lowest=9, highest=8), "need 1 <= lowest <= highest, got 9, 8"),
    (dict(slo_ms=5, step=0), "need step >= 1 and 0 < backoff < 1, got 0, 0.9"),
    (dict(slo_ms=5, backoff=1.0), "need step >= 1 and 0 < backoff < 1, got 8, 1.0"),
    (dict(slo_ms=5, backoff=0.0), "need step >= 1 and 0 < backoff < 1, got 8, 0.0"),
])
def test_bad_parameters_are_refused_with_a_message_naming_them(kw, message):
    with pytest.raises(EddyError) as err:
        AdaptiveBatchSize(**kw)
    assert str(err.value) == message


def test_behind_a_backlog_the_limit_grows_even_over_the_objective():
    """Past what the worker keeps up with, a record waits for the backlog ahead of it, not for its own
    batch: cutting the limit there (30-70 records at 3,000/s in run 20261207T131948) made every batch
    pay its fixed costs for fewer records, and the backlog drained slower."""
    b = AdaptiveBatchSize(slo_ms=10.0, start=32, step=8, highest=100)
    for _ in range(20):
        b.observe(n=b.limit, elapsed_ms=40.0, waiting=lambda: 1000)
    assert b.limit == 100  # grew, and stayed in bounds
    b.observe(n=100, elapsed_ms=40.0)  # caught up: the first full batch over the objective cuts it
    assert b.limit == 90
    b.observe(n=90, elapsed_ms=40.0, waiting=lambda: 89)  # less than another full batch: not behind
    assert b.limit == 81
    b.observe(n=5, elapsed_ms=40.0, waiting=lambda: 1000)  # a batch the limit did not bind says nothing
    assert b.limit == 81


def test_what_waits_is_asked_only_of_a_full_batch_over_the_objective():
    """The worker's question costs a call per partition: batches it cannot change do not ask it."""
    asked = []
    b = AdaptiveBatchSize(slo_ms=10.0, start=32, step=8)
    b.observe(n=5, elapsed_ms=40.0, waiting=lambda: asked.append("small") or 0)
    b.observe(n=32, elapsed_ms=5.0, waiting=lambda: asked.append("fast") or 0)
    b.observe(n=40, elapsed_ms=40.0, waiting=lambda: asked.append("full and slow") or 0)
    assert asked == ["full and slow"] and b.limit == 36
