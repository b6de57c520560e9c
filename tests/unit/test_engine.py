"""The batch engine without a broker: joins, redelivery, duplicates, queries before feedback
in one batch, hot swap between batches, per-record isolation and counts that reconcile.

State lives in :class:`stream.engine.memory.MemoryState`, dicts that read like the store and
apply a :class:`BatchWrite` the way the store's commit script does (for pure-logic tests and
the engine benchmark; the integration tests run the same engine against Redis).
"""

from __future__ import annotations

import hashlib
from collections import Counter

import msgspec
import numpy as np
import pytest

from bandits import make_policy
from features.model import FeatureModel
from learners import load_user_model
from stream import events
from stream.engine import PROCESSED, BatchWrite, Engine, InRecord
from stream.engine.records import DEAD_LETTER_MAX_VALUE, DeadLetter
from stream.engine.serving import request_seed
from stream.events import Feedback, Item, Query
from stream.engine.joins import JoinRecord
from stream.engine.markers import decode_marker
from stream.engine.markers import outputs as marker_outputs
from stream.engine.memory import MemoryState  # the other engine tests import it from here

pytestmark = pytest.mark.unit

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def model(trained_model_dir) -> FeatureModel:
    return FeatureModel.load(trained_model_dir)


@pytest.fixture
def engine(model) -> Engine:
    return Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0,
                  seed=7, clock=lambda: T0)


def query(rid: str, user: str = "u1", items=("i1", "i2", "i3", "i4"), ts: float = T0, **context) -> Query:
    return Query(request_id=rid, user_id=user, ts=ts, context=context or {"hour": 3.0},
                 candidates=tuple(Item(i) for i in items))


def feedback(rid: str, item: str, user: str = "u1", reward: float = 1.0, ts: float = T0 + 1) -> Feedback:
    return Feedback(request_id=rid, user_id=user, item_id=item, reward=reward, ts=ts)


class Log:
    """Numbers records per partition like a topic would."""

    def __init__(self) -> None:
        self.next: Counter[str] = Counter()

    def rec(self, event, partition: int = 0) -> InRecord:
        kind = "query" if isinstance(event, Query) else "feedback"
        off = self.next[kind]
        self.next[kind] += 1
        return InRecord(kind, f"eddy.{kind}", partition, off, event.user_id.encode(), events.encode(event))

    def raw(self, kind: str, value: bytes | None, partition: int = 0) -> InRecord:
        off = self.next[kind]
        self.next[kind] += 1
        return InRecord(kind, f"eddy.{kind}", partition, off, b"k", value)


def run(engine: Engine, state: MemoryState, records: list[InRecord]):
    batch = engine.process(records, state)
    state.commit(batch.write)
    engine.commit(batch)
    return batch


def outputs(batch, topic: str) -> list[dict]:
    if topic == "predictions":
        return [msgspec.json.decode(v) for _, v in batch.outputs.predictions]
    return [msgspec.json.decode(v) for t, _, v in batch.outputs.records if t == topic]


def reconciles(counts: Counter) -> bool:
    done = sum(counts[k] for k in PROCESSED)
    return counts["consumed"] == done + counts["dead_lettered"]


# ------------------------------------------------------------------- queries
def test_a_query_is_answered_with_its_logged_decision(engine):
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(query("r1"))])
    (pred,), (dec,) = outputs(batch, "predictions"), outputs(batch, "decisions")
    assert pred["chosen"][0] == dec["candidates"][dec["chosen_index"]]["id"]
    assert dec["seed"] == request_seed(7, "r1")
    assert abs(sum(dec["pmf"]) - 1) < 1e-9 and dec["propensity"] == dec["pmf"][dec["chosen_index"]]
    assert [r["item_id"] for r in pred["ranked"]][0] == pred["chosen"][0]
    record = JoinRecord.unpack(state.decisions["r1"])
    stored, emb = record.decision, record.embeddings
    assert record.prediction_bytes == batch.outputs.predictions[0][1]
    assert stored.chosen_index == dec["chosen_index"] and emb.shape == (4, engine.model.output_dim)
    assert batch.write.decision_ttl_s == 120.0  # twice the join window, given per write


def test_the_same_request_draws_the_same_action(model):
    picks = set()
    for _ in range(3):
        e = Engine(model, make_policy("softmax:temperature=5"), learner="river", join_window_s=60, seed=1)
        picks.add(outputs(run(e, MemoryState(), [Log().rec(query("same"))]), "decisions")[0]["chosen_index"])
    assert len(picks) == 1


# ------------------------------------------------------------------ feedback
def test_a_query_and_its_feedback_in_one_batch_join_even_when_feedback_comes_first(engine):
    state, log = MemoryState(), Log()
    # Which item the policy picks does not matter: feedback names any candidate.
    fb, q = log.rec(feedback("r1", "i2")), log.rec(query("r1"))
    batch = run(engine, state, [fb, q])
    assert batch.counts["feedback_applied"] == 1 and not batch.outputs.dead
    (outcome,) = outputs(batch, "outcomes")
    assert outcome["decision"]["request_id"] == "r1" and outcome["item_id"] == "i2"


def test_feedback_learns_from_the_item_it_names_not_the_chosen_one(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    record = JoinRecord.unpack(state.decisions["r1"])
    decision, emb = record.decision, record.embeddings
    other = next(i for i in range(4) if i != decision.chosen_index)
    before = load_user_model(engine._caches[engine.model.version].get_many(["u1"], lambda ids: {})["u1"].to_bytes())
    run(engine, state, [log.rec(feedback("r1", f"i{other + 1}", reward=1.0))])
    learned = load_user_model(state.users[(engine.model.version, "u1")])
    expected = load_user_model(before.to_bytes())
    expected.learn_one(emb[other].astype(np.float64), 1.0)
    wrong = load_user_model(before.to_bytes())
    wrong.learn_one(emb[decision.chosen_index].astype(np.float64), 1.0)
    np.testing.assert_allclose(learned.weights[0], expected.weights[0])
    assert not np.allclose(learned.weights[0], wrong.weights[0])


def test_redelivered_feedback_re_emits_its_outputs_and_learns_nothing(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    fb = log.rec(feedback("r1", "i1"))
    first = run(engine, state, [fb])
    users_after_first = dict(state.users)
    again = run(engine, state, [fb])  # the very same record, read again after a crash
    assert again.counts["feedback_redelivered"] == 1 and again.counts["feedback_applied"] == 0
    assert again.outputs.records == first.outputs.records
    assert not again.write.users and state.users == users_after_first


def test_a_second_feedback_for_an_applied_request_is_a_duplicate(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    run(engine, state, [log.rec(feedback("r1", "i1"))])
    batch = run(engine, state, [log.rec(feedback("r1", "i1"))])  # same content, another offset
    assert [d.reason for d in batch.outputs.dead] == ["duplicate_feedback"]
    assert not batch.write.users


def test_two_feedbacks_for_one_request_in_one_batch_apply_once(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    batch = run(engine, state, [log.rec(feedback("r1", "i1")), log.rec(feedback("r1", "i2"))])
    assert batch.counts["feedback_applied"] == 1
    assert [d.reason for d in batch.outputs.dead] == ["duplicate_feedback"]


def test_a_marker_outlives_its_decision_so_a_late_reread_still_re_emits(engine):
    """Decisions expire after twice the join window, markers after days: a batch re-read
    after a long outage must find the marker before it misses the decision."""
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    fb = log.rec(feedback("r1", "i1"))
    first = run(engine, state, [fb])
    del state.decisions["r1"]  # expired
    again = run(engine, state, [fb])
    assert again.counts["feedback_redelivered"] == 1 and not again.outputs.dead
    assert again.outputs.records == first.outputs.records and again.counts["redelivered_after_commit"] == 0


def test_a_marker_points_into_its_batchs_outbox_which_holds_the_outputs_as_published(engine):
    """Each marker is small (it lives days) and names its slice of the batch's outbox, which holds the
    outputs byte for byte: a marker sliced at the wrong place, or an outbox that re-encoded or escaped
    the outputs, would re-emit other events than the first attempt published."""
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query(f"r{i}", user=f"u{i}"), partition=i % 2) for i in range(4)])
    first = run(engine, state, [log.rec(feedback(f"r{i}", "i2", user=f"u{i}"), partition=i % 2) for i in range(4)])
    assert len(state.outboxes) == 2  # one per partition the batch applied feedback in
    published = {}
    for topic, key, value in first.outputs.records:
        published.setdefault(key, []).append((topic, value))
    for i in range(4):
        blob = state.applied[f"r{i}"]
        marker = decode_marker(blob)
        assert len(blob) < 100 and marker.source[1] == i % 2 and marker.count == 2
        assert marker_outputs(marker, state.outboxes) == published[f"u{i}".encode()]


def test_a_record_read_again_after_its_outputs_committed_re_emits_nothing(engine):
    """The shell deletes a batch's outbox once its Kafka transaction commits; a record read again after
    that (an offset reset, an expired consumer group) is redelivered with no output: re-emitting from
    anywhere else would publish its outcome twice, learning from it again would count it twice."""
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2", user="u2"))])
    fbs = [log.rec(feedback("r1", "i1")), log.rec(feedback("r2", "i1", user="u2"))]
    run(engine, state, fbs)
    state.outboxes.clear()  # committed: deleted
    again = run(engine, state, fbs)
    assert again.counts["feedback_redelivered"] == 2 and again.counts["redelivered_after_commit"] == 2
    assert not again.outputs.records and not again.outputs.dead and not again.write.users


def test_a_marker_in_the_json_format_of_earlier_workers_is_still_honoured(engine):
    """A worker upgraded in place finds the markers its predecessor wrote (JSON, each output a string, no
    outbox) for days: reading only the binary format would take a redelivered record for new and learn it
    twice, and ignoring their inline outputs would lose what an uncommitted batch produced."""
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    fb = log.rec(feedback("r1", "i1"))
    first = run(engine, state, [fb])
    m = decode_marker(state.applied["r1"])
    old = [(t, v.decode()) for t, v in marker_outputs(m, state.outboxes)]
    state.applied["r1"] = msgspec.json.encode([m.source, old, m.via, m.summed])
    state.outboxes.clear()
    again = run(engine, state, [fb])
    assert again.counts["feedback_redelivered"] == 1 and not again.outputs.dead and not again.write.users
    assert again.outputs.records == first.outputs.records


def test_user_mismatch_and_unknown_item_are_dead_letters(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    batch = run(engine, state, [log.rec(feedback("nope", "i1")), log.rec(feedback("r1", "i1", user="u2")),
                                log.rec(feedback("r1", "zz"))])
    assert sorted(d.reason for d in batch.outputs.dead) == ["unknown_item", "user_mismatch"]
    assert batch.counts["feedback_held"] == 1  # "nope" may still be decided: held, not dropped
    assert reconciles(state.counts)


@pytest.mark.parametrize("lag, late", [(60.0, False), (60.001, True)])
def test_the_join_window_includes_its_boundary(engine, lag, late):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    batch = run(engine, state, [log.rec(feedback("r1", "i1", ts=T0 + lag))])
    assert [d.reason for d in batch.outputs.dead] == (["late_feedback"] if late else [])


def test_feedback_after_a_hot_swap_updates_the_version_that_decided(engine, model, tmp_path):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    model.save(tmp_path / "v2")
    v2 = FeatureModel.load(tmp_path / "v2")
    v2.version = "v2"
    engine.install(v2)
    batch = run(engine, state, [log.rec(feedback("r1", "i1")), log.rec(query("r2"))])
    assert list(batch.write.users) == [(model.version, "u1")]
    assert outputs(batch, "decisions")[0]["feature_net_version"] == "v2"
    assert outputs(batch, "model-updates")[0]["feature_net_version"] == model.version


def test_a_batch_that_is_not_committed_is_forgotten(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    engine.process([log.rec(feedback("r1", "i1"))], state)  # processed, never committed (fenced)
    engine.forget()  # the shell's side of the contract
    batch = run(engine, state, [log.rec(query("r2"))])
    assert outputs(batch, "decisions")[0]["user_weights_version"] == 0
    assert (engine.model.version, "u1") not in state.users


# ----------------------------------------------------------------- isolation
class PoisonedModel:
    """The real feature net, except that it raises on any query whose context has ``poison``."""

    def __init__(self, model: FeatureModel):
        self._m = model

    def __getattr__(self, name):
        return getattr(self._m, name)

    def embed_many(self, queries):
        if any("poison" in ctx for ctx, _ in queries):
            raise ValueError("poisoned input")
        return self._m.embed_many(queries)


def test_one_record_that_breaks_the_feature_net_is_a_dead_letter_and_the_rest_is_answered(model):
    engine = Engine(PoisonedModel(model), make_policy("greedy"), learner="river", join_window_s=60)
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(query("a")), log.rec(query("b", poison=1.0)), log.rec(query("c"))])
    assert [p["request_id"] for p in outputs(batch, "predictions")] == ["a", "c"]
    assert [(d.reason, d.record.offset) for d in batch.outputs.dead] == [("embedding_failed", 1)]
    assert reconciles(batch.counts)


def test_feedback_that_would_make_weights_non_finite_is_a_dead_letter(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1"))])
    record = JoinRecord.unpack(state.decisions["r1"])
    state.decisions["r1"] = JoinRecord(record.decision_bytes, record.prediction_bytes,
                                       np.full_like(record.embeddings, np.inf)).pack()
    batch = run(engine, state, [log.rec(feedback("r1", "i1")), log.rec(query("r2"))])
    assert [d.reason for d in batch.outputs.dead] == ["learning_failed"]
    assert not batch.write.users and not batch.write.population and not batch.write.applied
    assert batch.counts["predictions"] == 1 and reconciles(batch.counts)


def test_malformed_records_are_dead_letters_with_their_bytes_and_counts_reconcile(engine):
    state, log = MemoryState(), Log()
    recs = [log.raw("query", b"{not json"), log.raw("feedback", None), log.rec(query("r1")),
            log.raw("query", b'{"schema":"eddy.query/1"}'), log.rec(feedback("r1", "i3"))]
    batch = run(engine, state, recs)
    assert [d.record.value for d in batch.outputs.dead] == [b"{not json", None, b'{"schema":"eddy.query/1"}']
    assert {d.reason for d in batch.outputs.dead} == {"not_json", "empty", "missing_field"}
    assert reconciles(state.counts) and state.counts["consumed"] == 5


def test_an_oversized_dead_letter_is_truncated_with_its_length_and_digest():
    value = b"x" * (DEAD_LETTER_MAX_VALUE + 10)
    d = DeadLetter(InRecord("query", "eddy.queries", 2, 9, None, value), "oversized", "too big")
    headers = dict(d.headers)
    assert len(d.value) == DEAD_LETTER_MAX_VALUE
    assert headers["eddy.original.length"] == str(len(value)).encode()
    assert headers["eddy.original.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["eddy.source.offset"] == b"9" and headers["eddy.reason"] == b"oversized"


def test_population_statistics_and_counts_commit_with_the_batch(engine):
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1", user="a"), partition=1), log.rec(query("r2", user="b"), partition=1)])
    batch = run(engine, state, [log.rec(feedback("r1", "i1", user="a"), partition=1),
                                log.rec(feedback("r2", "i2", user="b"), partition=1)])
    assert list(batch.write.population) == [(engine.model.version, 1)]
    assert batch.write.counts == dict(batch.counts) and state.counts["feedback_applied"] == 2


# ------------------------------------------------------- re-read batches
def test_a_query_read_again_re_emits_its_logged_prediction_byte_for_byte(engine):
    """Once Redis holds a decision, its prediction may have been shown: a batch read again
    (crash before the Kafka commit, abort, rebalance) must not decide again, even after
    feedback moved the user's weights in between."""
    state, log = MemoryState(), Log()
    q = log.rec(query("r1"))
    first = run(engine, state, [q])
    run(engine, state, [log.rec(feedback("r1", "i1", reward=5.0))])  # the weights move
    again = run(engine, state, [q])
    assert again.outputs.predictions == first.outputs.predictions
    assert again.outputs.records == first.outputs.records
    assert again.counts["predictions_redelivered"] == 1 and again.counts["predictions"] == 0
    assert not again.write.decisions and reconciles(again.counts)


def test_the_same_request_twice_in_one_batch_gets_one_decision(engine):
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(query("r1")), log.rec(query("r1"))])
    assert len(batch.outputs.predictions) == 2 and len(set(batch.outputs.predictions)) == 1
    assert batch.counts["predictions"] == 1 and batch.counts["predictions_redelivered"] == 1
    assert reconciles(batch.counts)


def test_a_feedback_that_fails_half_way_puts_the_users_model_back(engine, monkeypatch):
    """Models learn in place: one that raised after changing its weights must not keep the change."""
    from learners.sgd import RiverUserModel

    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    run(engine, state, [log.rec(feedback("r1", "i1"))])
    learn = RiverUserModel.learn_one

    def learn_then_fail(self, x, y):
        learn(self, x, y)
        raise ValueError("boom after the update")

    monkeypatch.setattr(RiverUserModel, "learn_one", learn_then_fail)
    batch = run(engine, state, [log.rec(feedback("r2", "i2"))])
    assert [d.reason for d in batch.outputs.dead] == ["learning_failed"]
    assert load_user_model(state.users[(engine.model.version, "u1")]).n_obs == 1
    monkeypatch.undo()
    after = run(engine, state, [log.rec(query("r3"))])
    assert outputs(after, "decisions")[0]["user_weights_version"] == 1  # not 2: the failed update is gone


def test_an_applied_feedback_publishes_its_outcome_and_model_update_in_full(engine, model):
    """The outcome and the model update are what downstream consumers read: every field counts.
    The second feedback's user is loaded from the store (another worker's state), not the cache."""
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("r1")), log.rec(query("r2"))])
    run(engine, state, [log.rec(feedback("r1", "i2", reward=0.5, ts=T0 + 2))])
    engine.forget()  # the user is now only in the store
    batch = run(engine, state, [log.rec(feedback("r2", "i3", reward=1.0, ts=T0 + 3))])
    (outcome,) = outputs(batch, "outcomes")
    assert (outcome["item_id"], outcome["reward"], outcome["feedback_ts"]) == ("i3", 1.0, T0 + 3)
    assert outcome["decision"]["request_id"] == "r2"
    (update,) = outputs(batch, "model-updates")
    assert {k: update[k] for k in ("kind", "feature_net_version", "version", "user_id", "request_id", "ts")} == {
        "kind": "user_weights", "feature_net_version": model.version, "version": 2, "user_id": "u1",
        "request_id": "r2", "ts": T0}
    summary = update["summary"]
    assert set(summary) == {"n_obs", "delta_norm", "error"} and summary["n_obs"] == 2
    assert summary["delta_norm"] > 0 and -1.0 <= summary["error"] <= 2.0


class FailingReads(MemoryState):
    """The store goes away after the decisions were read: the user's model or the statistics cannot be."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = None
        self._failing = failing

    def fail(self) -> None:
        self.failing = self._failing

    def load_users(self, fn, users):
        if self.failing == "users":
            raise ConnectionError("redis went away")
        return super().load_users(fn, users)

    def load_population(self, fn, partition):
        if self.failing == "population":
            raise ConnectionError("redis went away")
        return super().load_population(fn, partition)


@pytest.mark.parametrize("failing", ["users", "population"])
def test_a_failed_state_read_while_learning_is_an_outage_not_a_dead_letter(model, failing):
    state, log = FailingReads(failing), Log()
    first = Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0,
                   seed=7, clock=lambda: T0)
    run(first, state, [log.rec(query("r1"))])
    fresh = Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner="river", join_window_s=60.0,
                   seed=7, clock=lambda: T0)  # a new owner: nothing in memory, every read goes to the store
    state.fail()
    with pytest.raises(ConnectionError):  # the shell rewinds the batch and waits the outage out
        fresh.process([log.rec(feedback("r1", "i2"))], state)
    state.failing = None
    batch = run(fresh, state, [log.rec(feedback("r1", "i2"))])  # read again once the store is back
    assert batch.counts["feedback_applied"] == 1 and not batch.outputs.dead
