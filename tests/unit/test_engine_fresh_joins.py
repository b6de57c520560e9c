"""Feedback joined from memory (stream/engine/fresh.py): the join record of a decision this engine
committed as new answers its feedback without reading the store, and every answer is the one the
store would have given (the last test runs random histories both ways and compares everything)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from learners import load_user_model
from stream.engine import DecisionsExist
from stream.engine.joins import JoinRecord
from stream.engine.memory import MemoryState
from tests.unit.test_engine import T0, Log, feedback, model, query  # noqa: F401 (fixtures)
from tests.unit.test_engine_learning import make_engine
from tests.unit.test_engine_optimistic import CountingState, like_the_worker as step

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def n_obs(state: MemoryState, user: str = "u1") -> int:
    ((_, blob),) = [(k, v) for k, v in state.users.items() if k[1] == user]
    return load_user_model(blob).n_obs


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def engine(model, clock):
    e = make_engine(model)
    e._clock = clock
    e.held_counts({0: 0, 1: 0})
    return e


def test_feedback_for_its_own_new_decision_reads_nothing_and_applies(engine):
    state, log = CountingState(), Log()
    step(engine, state, [log.rec(query("r1"))])
    batch = step(engine, state, [log.rec(feedback("r1", "i2"))])
    assert state.decisions_read == [] and state.applied_read == []
    assert batch.counts["feedback_applied"] == 1 and n_obs(state) == 1
    assert "r1" in state.applied and len(engine.fresh) == 0  # applied: the store answers from now on


def test_a_second_feedback_then_reads_the_store_and_is_a_duplicate(engine):
    state, log = CountingState(), Log()
    step(engine, state, [log.rec(query("r1"))])
    step(engine, state, [log.rec(feedback("r1", "i2"))])
    batch = step(engine, state, [log.rec(feedback("r1", "i3"))])
    assert "r1" in state.applied_read
    assert batch.counts["dead_lettered.duplicate_feedback"] == 1 and n_obs(state) == 1


@pytest.mark.parametrize("why", ["not optimistic", "other partition", "join window passed", "forgotten",
                                 "memory off"])
def test_otherwise_the_feedback_reads_the_store(model, engine, clock, why):
    state, log = CountingState(), Log()
    if why == "memory off":
        engine = make_engine(model, join_memory_bytes=0)
        engine.held_counts({0: 0, 1: 0})
    q = log.rec(query("r1"))
    if why == "not optimistic":
        batch = engine.process([q], state)
        state.commit(batch.write)
        engine.commit(batch)
    else:
        step(engine, state, [q])
    if why == "join window passed":
        clock.now += engine.join_window_s
    if why == "forgotten":
        engine.forget()
    state.decisions_read.clear()
    state.applied_read.clear()
    step(engine, state, [log.rec(feedback("r1", "i2"), partition=1 if why == "other partition" else 0)])
    assert "r1" in state.decisions_read and "r1" in state.applied_read


def test_a_request_id_used_again_over_an_old_marker_stays_a_duplicate(engine):
    """Its decision expired, its marker did not: the commit refuses the optimistic batch (the marker),
    so memory never answers for it, and its feedback is the duplicate the store says it is."""
    state, log = MemoryState(), Log()
    step(engine, state, [log.rec(query("r0"))])
    step(engine, state, [log.rec(feedback("r0", "i1"))])
    state.applied["r1"] = state.applied.pop("r0")
    batch = step(engine, state, [log.rec(query("r1"))])
    assert "r1" in state.decisions and not batch.write.expect_new  # decided the careful way
    assert len(engine.fresh) == 0
    batch = step(engine, state, [log.rec(feedback("r1", "i2"))])
    assert batch.counts["dead_lettered.duplicate_feedback"] == 1


def test_a_refused_batch_with_feedback_learns_it_once(engine):
    """The batch learned its feedback into the user's model in place, then its commit was refused (a
    retried query): without :meth:`Engine.refused`, the careful retry learns it a second time."""
    state, log = MemoryState(), Log()
    step(engine, state, [log.rec(query("r0"))])
    step(engine, state, [log.rec(query("r1"))])
    batch = engine.process([log.rec(query("r0")), log.rec(feedback("r1", "i2"))], state, optimistic=True)
    assert batch.counts["feedback_applied"] == 1
    with pytest.raises(DecisionsExist):
        state.commit(batch.write)
    engine.refused(batch)
    again = engine.process([log.rec(query("r0")), log.rec(feedback("r1", "i2"))], state)
    state.commit(again.write)
    engine.commit(again)
    assert again.counts["predictions_redelivered"] == 1 and again.counts["feedback_applied"] == 1
    assert n_obs(state) == 1


# Random histories: queries (some retried), feedback (some twice, some for unknown requests or items,
# some late), in two partitions, with the clock moving and the engine sometimes forgetting; processed
# with memory on and off, everything published and stored must be the same.
_op = st.one_of(
    st.tuples(st.just("query"), st.integers(0, 2)),
    st.tuples(st.just("feedback"), st.integers(0, 3), st.sampled_from(["i1", "i2", "zz"]), st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([1.0, 30.0, 61.0])),
    st.tuples(st.just("forget"),),
    st.tuples(st.just("cut"),),
)


def _timeless(value: bytes) -> dict:
    """A published record without the time the engine took (measured, so different in every run)."""
    out = msgspec.json.decode(value)
    out.pop("latency_ms", None)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, min_size=1, max_size=14))
@example(ops=[("query", 0), ("cut",), ("feedback", 0, "i1", False), ("cut",), ("feedback", 0, "i2", False)])
@example(ops=[("query", 1), ("tick", 61.0), ("feedback", 1, "i1", False), ("query", 1), ("cut",),
              ("feedback", 1, "i2", True), ("feedback", 1, "i2", False)])
def test_memory_on_or_off_publishes_and_stores_the_same(model, ops):
    runs = []
    for memory in (64 << 20, 0):
        clock, state, log = Clock(), MemoryState(), Log()
        engine = make_engine(model, join_memory_bytes=memory)
        engine._clock = clock
        engine.held_counts({0: 0, 1: 0})
        out, pending = [], []

        def flush():
            if pending:
                b = step(engine, state, list(pending))
                out.append(([_timeless(v) for _, v in b.outputs.predictions],
                            [(t, _timeless(v)) for t, _, v in b.outputs.records],
                            [(d.reason, d.record.offset) for d in b.outputs.dead]))
                pending.clear()

        for op in ops:
            if op[0] == "query":  # request r<k> is user u<k % 2>'s, in partition k % 2
                pending.append(log.rec(query(f"r{op[1]}", user=f"u{op[1] % 2}", ts=clock.now), partition=op[1] % 2))
            elif op[0] == "feedback":  # op[3]: from the other user, in the other partition
                p = (op[1] + op[3]) % 2
                pending.append(log.rec(feedback(f"r{op[1]}", op[2], user=f"u{p}", ts=clock.now + 0.5), partition=p))
            elif op[0] == "tick":
                flush()
                clock.now += op[1]
            elif op[0] == "forget":
                flush()
                engine.forget()
            else:
                flush()
        flush()
        joins = {r: (j.decision_bytes, _timeless(j.prediction_bytes), j.embeddings.tobytes())
                 for r, j in ((r, JoinRecord.unpack(v)) for r, v in state.decisions.items())}
        runs.append((out, joins, dict(state.applied), dict(state.users), state.counts))
    assert runs[0] == runs[1]
