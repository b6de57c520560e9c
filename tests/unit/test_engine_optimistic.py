"""Optimistic query batches: decide without reading for stored decisions, let the commit check.

A batch read again (crash, rebalance) or a retried request id must re-emit the stored decision
byte for byte. Reading for it costs a store round trip per batch; an optimistic batch skips the
read, and its commit refuses (``DecisionsExist``, nothing written) when a decision is there, so
the worker processes the batch again the careful way. These tests pin when a batch may be
optimistic (its queries in partitions known to hold no early feedback; with feedback, only
where nothing else learns in memory) and that the retry re-emits exactly what was logged.
"""

from __future__ import annotations

import pytest

from stream.engine import DecisionsExist, Engine
from stream.engine.memory import MemoryState
from stream.engine.selection import Selection
from tests.unit.test_engine import Log, engine, feedback, model, outputs, query, run  # noqa: F401 (fixtures)
from tests.unit.test_engine_learning import RecordingPolicy

pytestmark = pytest.mark.unit


class CountingState(MemoryState):
    """MemoryState that records the join reads: decisions and applied-markers (a Redis round trip in the worker)."""

    def __init__(self) -> None:
        super().__init__()
        self.decisions_read: list[str] = []
        self.applied_read: list[str] = []

    def load_decisions(self, requests):
        self.decisions_read += list(requests)
        return super().load_decisions(requests)

    def load_applied(self, requests):
        self.applied_read += list(requests)
        return super().load_applied(requests)

    def load_selection(self, partition):  # model selection's state: none yet
        return None


def like_the_worker(engine: Engine, state: MemoryState, records):
    """What the worker does: optimistic first; on a refusal, the same records with the check."""
    batch = engine.process(records, state, optimistic=True)
    try:
        state.commit(batch.write)
    except DecisionsExist:
        engine.refused(batch)
        batch = engine.process(records, state)
        state.commit(batch.write)
    engine.commit(batch)
    return batch


def test_a_query_batch_in_a_partition_known_empty_of_held_feedback_skips_the_read(engine):
    state, log = CountingState(), Log()
    engine.held_counts({0: 0})
    batch = engine.process([log.rec(query("r1")), log.rec(query("r2"))], state, optimistic=True)
    assert state.decisions_read == []
    assert batch.write.expect_new
    assert set(batch.write.decisions) == {"r1", "r2"}


def test_a_batch_with_feedback_is_optimistic_too(engine):
    state, log = CountingState(), Log()
    engine.held_counts({0: 0})
    batch = engine.process([log.rec(query("r1")), log.rec(feedback("old", "i1"))], state, optimistic=True)
    assert state.decisions_read == ["old"]  # the feedback's join record, not the query's check
    assert batch.write.expect_new


@pytest.mark.parametrize("why", ["not optimistic", "held unknown", "feedback, a learning policy",
                                 "feedback, model selection", "other partition"])
def test_otherwise_the_batch_reads_for_stored_decisions_first(engine, why):
    state, log = CountingState(), Log()
    engine.held_counts({0: 0})
    records = [log.rec(query("r1"))]
    if why == "held unknown":
        engine.held_counts({0: 3})
    if why.startswith("feedback"):  # what learns in memory outside the users could not be put back
        records.append(log.rec(feedback("old", "i1")))
        if why == "feedback, a learning policy":
            engine.policy = RecordingPolicy()
        else:
            engine.serve_selection(Selection([], mode="shadow"))
    if why == "other partition":
        records.append(log.rec(query("r2"), partition=1))
    batch = engine.process(records, state, optimistic=why != "not optimistic")
    assert "r1" in state.decisions_read  # the query's own check
    assert not batch.write.expect_new


def test_a_batch_read_again_re_emits_the_logged_decision_byte_for_byte(engine):
    state, log = MemoryState(), Log()
    engine.held_counts({0: 0})
    records = [log.rec(query("r1", items=tuple(f"i{k}" for k in range(12))))]
    first = like_the_worker(engine, state, records)
    again = like_the_worker(engine, state, records)
    assert again.outputs.predictions == first.outputs.predictions
    assert again.counts["predictions_redelivered"] == 1 and "predictions" not in again.counts
    assert not again.write.decisions


def test_a_refused_commit_writes_nothing(engine):
    state, log = MemoryState(), Log()
    engine.held_counts({0: 0})
    run(engine, state, [log.rec(query("r1"))])
    before = (dict(state.decisions), state.counts.copy())
    batch = engine.process([log.rec(query("r1")), log.rec(query("r2"))], state, optimistic=True)
    with pytest.raises(DecisionsExist) as err:
        state.commit(batch.write)
    assert err.value.requests == ["r1"]
    assert (state.decisions, state.counts) == before
    assert "r2" not in state.decisions


def test_a_retried_request_among_new_ones_keeps_its_decision_and_the_new_ones_are_decided(engine):
    state, log = MemoryState(), Log()
    engine.held_counts({0: 0})
    first = like_the_worker(engine, state, [log.rec(query("r1"))])
    mixed = like_the_worker(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    preds = outputs(mixed, "predictions")
    assert sorted(p["request_id"] for p in preds) == ["r1", "r2"]
    assert first.outputs.predictions[0] in mixed.outputs.predictions
    assert set(state.decisions) == {"r1", "r2"}
    assert mixed.counts["predictions_redelivered"] == 1 and mixed.counts["predictions"] == 1
