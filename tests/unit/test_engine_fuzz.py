"""A property of the engine over arbitrary batches: nothing escapes, and the counts reconcile.

Every record either becomes an output (a prediction, a redelivery, an applied feedback) or a
dead letter with its own bytes; ``consumed = sum(PROCESSED) + dead_lettered`` for every batch.
Short in CI (``EDDY_FUZZ_EXAMPLES`` raises it, as for the decoders' fuzz suite).
"""

from __future__ import annotations

import json
import os

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bandits import make_policy
from features.model import FeatureModel
from stream.engine import PROCESSED, Engine, InRecord

from .test_engine import T0, MemoryState

pytestmark = pytest.mark.unit

EXAMPLES = int(os.environ.get("EDDY_FUZZ_EXAMPLES", "40"))

ids = st.sampled_from(["r1", "r2", "r3", "", "x" * 300, "\ud800", 7, None])
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.sampled_from([1e308, -1e6, 0.0, 3.0]))
features = st.dictionaries(st.sampled_from(["hour", "genre", "price"]),
                           st.one_of(numbers, st.text(max_size=5), st.none(), st.lists(st.integers(), max_size=2)),
                           max_size=3)
candidates = st.lists(st.one_of(st.sampled_from(["i1", "i2", "i3"]),
                                st.fixed_dictionaries({"id": st.sampled_from(["i1", "i2", "i4"]),
                                                       "features": features})), max_size=5)
query = st.fixed_dictionaries({"schema": st.sampled_from(["eddy.query/1", "eddy.query/2", "x"]),
                               "request_id": ids, "user_id": st.sampled_from(["u1", "u2", ""]),
                               "ts": st.one_of(st.just(T0), numbers), "context": features,
                               "candidates": candidates, "k": st.one_of(st.just(1), st.integers(-1, 9))})
feedback = st.fixed_dictionaries({"schema": st.sampled_from(["eddy.feedback/1", "eddy.query/1"]),
                                  "request_id": ids, "user_id": st.sampled_from(["u1", "u2"]),
                                  "item_id": st.sampled_from(["i1", "i2", "i4", ""]),
                                  "reward": st.one_of(st.just(1.0), numbers),
                                  "ts": st.one_of(st.just(T0 + 1), numbers)})


def _bytes(doc) -> bytes:
    return json.dumps(doc, allow_nan=True).encode("utf-8", "surrogatepass")


records = st.lists(st.one_of(
    st.tuples(st.just("query"), query.map(_bytes)),
    st.tuples(st.just("feedback"), feedback.map(_bytes)),
    st.tuples(st.sampled_from(["query", "feedback"]), st.one_of(st.binary(max_size=40), st.none())),
), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def model(trained_model_dir) -> FeatureModel:
    return FeatureModel.load(trained_model_dir)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(records, min_size=1, max_size=3), policy=st.sampled_from(["epsilon_greedy", "softmax"]))
@example(batches=[[("feedback", b'{"schema": "eddy.feedback/1", "request_id": "r1", "user_id": "u2", "item_id": "i1",'
                              b' "reward": 1.0, "ts": 1700000001.0}')],
                  [("query", b'{"schema": "eddy.query/1", "request_id": "r1", "user_id": "u1", "ts": 1700000000.0,'
                             b' "context": {}, "candidates": ["i1"], "k": 1}')]],
          policy="epsilon_greedy")  # the held feedback is dead-lettered (user mismatch) in the next batch
def test_every_record_is_an_output_or_a_dead_letter_and_counts_reconcile(model, batches, policy):
    engine = Engine(model, make_policy(policy), learner="river", join_window_s=60.0, clock=lambda: T0)
    state = MemoryState()
    offset = 0
    earlier: dict[int, bytes | None] = {}  # records of earlier batches: a held feedback may be dead-lettered later
    for raw in batches:
        recs = []
        for kind, value in raw:
            recs.append(InRecord(kind, f"eddy.{kind}", 0, offset, b"k", value))
            offset += 1
        batch = engine.process(recs, state)
        state.commit(batch.write)
        engine.commit(batch)
        c = batch.counts
        assert c["consumed"] == len(recs) == sum(c[k] for k in PROCESSED) + c["dead_lettered"]
        mine = {r.offset: r.value for r in recs}
        released = [d for d in batch.outputs.dead if d.record.offset not in mine]
        assert len(released) == c["held_dead_lettered"] and all(d.record.offset in earlier for d in released)
        for d in batch.outputs.dead:
            assert d.reason and d.record.value == {**earlier, **mine}[d.record.offset]
        earlier.update(mine)
        for _, value in batch.outputs.predictions:
            assert msgspec.json.decode(value)["schema"] == "eddy.prediction/1"
        for _, _, value in batch.outputs.records:
            msgspec.json.decode(value)
