"""What ``stream/engine/batch.py`` promises beyond the join and learning, through :meth:`Engine.process`:
re-emitting what a re-read batch already decided, the per-batch counts and timings the worker exports,
and the dead letters' texts. Each docstring names the mutants (mutmut's numbering in docs/testing.md,
"Sixth run") it was written against.
"""

from __future__ import annotations

import time

import pytest

from bandits import make_policy
from stream.engine import Engine
from stream.engine.anytime import Anytime
from stream.engine.selection import Selection

from .test_engine import T0, Log, MemoryState, PoisonedModel, engine, feedback, model, outputs, query, reconciles, run  # noqa: F401
from .test_engine_anytime import late
from .test_engine_user_memory import v2  # noqa: F401 (a fixture)

pytestmark = pytest.mark.unit


def make_engine(model, **kw) -> Engine:
    return Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0, seed=7,
                  clock=lambda: T0, **kw)


def deadline(**kw) -> Anytime:
    return Anytime(deadline_ms=3_600_000, chunk_rows=3, clock=lambda: T0, **kw)


# ------------------------------------------------------------- re-read batches
def test_a_batch_that_mixes_new_requests_with_decided_ones_answers_each_in_order(engine):
    """``_reemit_decided`` 17 (``break`` for ``continue`` after a new request): a new request before a
    re-read one must not stop the re-read one, nor the new ones after it, from being answered."""
    state, log = MemoryState(), Log()
    decided = log.rec(query("old"))
    first = run(engine, state, [decided])
    batch = run(engine, state, [log.rec(query("new1")), decided, log.rec(query("new2"))])
    assert sorted(p["request_id"] for p in outputs(batch, "predictions")) == ["new1", "new2", "old"]
    assert first.outputs.predictions[0] in batch.outputs.predictions
    assert batch.counts["predictions"] == 2 and batch.counts["predictions_redelivered"] == 1
    assert reconciles(batch.counts)


def test_every_held_feedback_a_re_read_batch_re_emits_is_counted(model):
    """``_reemit_decided`` 42 (``held_redelivered = 1``): a re-read query batch that had applied two held
    feedbacks re-emits both outcomes and counts both."""
    engine, state, log = make_engine(model), MemoryState(), Log()
    run(engine, state, [log.rec(feedback("r1", "i2")), log.rec(feedback("r2", "i3"))])
    queries = [log.rec(query("r1")), log.rec(query("r2"))]
    first = run(engine, state, queries)
    assert first.counts["held_applied"] == 2
    again = run(engine, state, queries)
    assert again.counts["held_redelivered"] == 2 and sorted(again.outputs.records) == sorted(first.outputs.records)


# ------------------------------------------------------------------ the deadline
@pytest.mark.parametrize("anytime", [False, True])
def test_a_record_that_breaks_the_feature_net_is_a_dead_letter_that_names_the_error(model, anytime):
    """``_embed`` 24, 30 (the detail under a deadline) and the same detail without one: the operator reads
    the feature net's error."""
    engine = Engine(PoisonedModel(model), make_policy("greedy"), learner="river", join_window_s=60,
                    clock=lambda: T0, anytime=deadline() if anytime else None)
    batch = run(engine, MemoryState(), [Log().rec(query("a")), Log().rec(query("b", poison=1.0))])
    assert [(d.reason, d.detail) for d in batch.outputs.dead] == [("embedding_failed", "ValueError: poisoned input")]


def test_every_approximated_query_and_candidate_in_a_batch_is_counted(model):
    """``_embed`` 32, 36 (``candidates_approximated =``, ``queries_approximated =`` for ``+=``): two late
    queries in one batch count two queries and all five candidates."""
    engine = make_engine(model, anytime=deadline())
    batch = run(engine, MemoryState(), [Log().rec(late("r1", items=("i1", "i2", "i3"))),
                                        Log().rec(late("r2", items=("i1", "i2"), user="u2"))])
    assert batch.counts["queries_approximated"] == 2 and batch.counts["candidates_approximated"] == 5


@pytest.mark.parametrize("how", ["one pass", "one pass under a deadline", "a pass per query after a failure"])
def test_the_feature_net_time_is_the_time_its_passes_took(model, how):
    """``_embed`` 41-43 and the other passes' timings (``None``, ``+ t0``, ``- perf_counter``): the worker
    exports ``feature_net_s``; it lies between zero and the batch's own wall time."""
    net = PoisonedModel(model) if how.startswith("a pass per query") else model
    engine = Engine(net, make_policy("greedy"), learner="river", join_window_s=60, clock=lambda: T0,
                    anytime=deadline() if "deadline" in how else None)
    log = Log()
    records = [log.rec(query("a")), log.rec(query("b", poison=1.0) if net is not model else query("b"))]
    t0 = time.perf_counter()
    batch = engine.process(records, MemoryState())
    wall = time.perf_counter() - t0
    assert 0 < batch.feature_net_s <= wall
    assert t0 < batch.features_ready <= t0 + wall if "deadline" in how else batch.features_ready is None


# ------------------------------------------------------------------- selection
def test_serving_a_selection_makes_each_challengers_user_cache_at_once(model, v2):
    """``serve_selection`` 2 (``is None`` for ``is not None``): each challenger's users get a cache of the
    worker's size with the challenger's prior when it is served, so its figures show from the start and
    feedback to its decisions after a restart learns into it, not into a prior-less retired-version cache."""
    engine = make_engine(model, cache_users=700)
    engine.serve_selection(Selection([v2], mode="shadow"))
    assert sorted(engine.cache_figures()) == [("v1", 0, 700, 0, 0), ("v2", 0, 700, 0, 0)]
    engine.serve_selection(None)
    assert engine.selection is None


class CountingModel(PoisonedModel):
    """The real feature net (raising on a ``poison`` context), counting its forward passes and their sizes."""

    def __init__(self, model) -> None:
        super().__init__(model)
        self.passes: list[int] = []

    def embed_many(self, queries, **kw):
        self.passes.append(len(queries))
        return super().embed_many(queries)


def test_a_batchs_queries_are_embedded_in_one_forward_pass_and_one_per_query_only_after_a_failure(model):
    """``_embed`` 48-55 (the batch's pass broken, so every batch fell back to a pass per query: the same
    outputs, N times the feature net's cost): one pass for the batch; after it fails, one per query."""
    net = CountingModel(model)
    engine = Engine(net, make_policy("greedy"), learner="river", join_window_s=60, clock=lambda: T0)
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(query(r)) for r in ("a", "b", "c")])
    assert net.passes == [3] and batch.counts["predictions"] == 3
    net.passes.clear()
    batch = run(engine, state, [log.rec(query("d")), log.rec(query("e", poison=1.0)), log.rec(query("f"))])
    assert net.passes == [3, 1, 1, 1] and batch.counts["predictions"] == 2
