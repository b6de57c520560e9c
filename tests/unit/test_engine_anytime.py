"""Anytime predictions in the engine, without a broker: what a deadline approximates, what the records say,
what feedback learns from, and that a re-read batch re-emits the decision as made.

Deadlines here are either long past (nothing is computed) or an hour ahead (everything is): which
chunks finish inside a tight budget depends on the machine, so that is measured in
benchmarks/anytime.py, not asserted.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from bandits import make_policy
from features.model import FeatureModel
from learners import load_user_model
from stream.engine import Engine
from stream.engine.anytime import Anytime, FeatureMeans, _run_chunk
from stream.engine.joins import JoinRecord
from stream.events import Item, Query

from .test_engine import T0, Log, MemoryState, PoisonedModel, feedback, outputs, query, reconciles, run

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def model(trained_model_dir) -> FeatureModel:
    return FeatureModel.load(trained_model_dir)


def engine_with(model, *, deadline_ms: float = 0.0, learner: str = "bayes", chunk_rows: int = 2) -> Engine:
    return Engine(model, make_policy("epsilon_greedy:epsilon=0.3"), learner=learner, join_window_s=60.0, seed=7,
                  clock=lambda: T0, anytime=Anytime(deadline_ms=deadline_ms, chunk_rows=chunk_rows,
                                                    clock=lambda: T0))


def late(rid: str, items=("i1", "i2", "i9"), user: str = "u1") -> Query:
    """A query whose deadline (100 ms after ts) passed long before the batch (ts 10 s ago)."""
    return Query(rid, user, T0 - 10, {"hour": 3.0}, tuple(Item(i) for i in items), 1, 100.0)


def test_feature_means_are_running_means_per_item_then_the_population_mean():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(30, 3))
    items = [f"i{k % 4}" for k in range(30)]
    m = FeatureMeans(dim=3, capacity=10)
    for k in range(0, 30, 7):  # in uneven pieces
        m.observe(items[k:k + 7], rows[k:k + 7])
    for i in range(4):
        mine = rows[[k for k in range(30) if items[k] == f"i{i}"]].mean(axis=0)
        assert np.allclose(m.expected([f"i{i}"])[0], mine, atol=1e-6)
    assert np.allclose(m.expected(["never"])[0], rows.mean(axis=0), atol=1e-6)


def test_a_chunk_is_one_forward_pass_over_its_rows_grouped_by_query():
    """No torch here: the feature net is a function of (context, item), called once per chunk."""
    calls = []

    def embed_many(sub):
        calls.append(sub)
        rows = [np.array([[ctx["q"], float(it["id"])] for it in items], dtype=np.float32) for ctx, items in sub]
        return rows, [(0,) if ctx["q"] == 1.0 else () for ctx, _ in sub]  # query 1's first item came coarsened

    inputs = [({"q": 0.0}, [{"id": "1"}, {"id": "2"}, {"id": "3"}]), ({"q": 1.0}, [{"id": "4"}, {"id": "5"}])]
    out, coarsened = _run_chunk(embed_many, inputs, [(0, 2), (1, 0), (0, 0)])
    assert out.tolist() == [[0.0, 3.0], [1.0, 4.0], [0.0, 1.0]]  # in the chunk's order
    assert coarsened.tolist() == [False, True, False]
    assert calls == [[({"q": 0.0}, [{"id": "3"}, {"id": "1"}]), ({"q": 1.0}, [{"id": "4"}])]]
    assert FeatureMeans(dim=2, capacity=1).expected(["a"]).dtype == np.float32  # the feature net's dtype


def test_feature_means_keep_the_most_recent_items_and_ignore_broken_rows():
    m = FeatureMeans(dim=1, capacity=2)
    m.observe(["a", "b", "c"], np.array([[1.0], [2.0], [3.0]]))
    m.observe(["x"], np.array([[np.nan]]))
    assert len(m) == 2 and m.expected(["a"])[0, 0] == pytest.approx(2.0)  # evicted: the population mean
    assert m.expected(["c"])[0, 0] == 3.0
    assert FeatureMeans(dim=2, capacity=1).expected(["z"]).tolist() == [[0.0, 0.0]]  # nothing seen yet


def test_without_a_deadline_nothing_is_approximated(model):
    engine = engine_with(model)
    batch = run(engine, MemoryState(), [Log().rec(query("r1"))])
    (pred,), (dec,) = outputs(batch, "predictions"), outputs(batch, "decisions")
    assert "approximated" not in pred and "approximated" not in dec
    assert batch.counts["candidates_approximated"] == 0


def test_a_deadline_far_ahead_computes_every_feature_exactly(model):
    engine = engine_with(model, deadline_ms=3_600_000)
    state, log = MemoryState(), Log()
    q = query("r1", items=("i1", "i2", "i3", "i4", "i5"))  # three chunks of two rows
    batch = run(engine, state, [log.rec(q)])
    (dec,) = outputs(batch, "decisions")
    assert "approximated" not in dec
    used = JoinRecord.unpack(state.decisions["r1"]).embeddings
    exact = model.embed(q.context, [c.to_dict() for c in q.candidates])
    assert np.allclose(used, exact, atol=1e-6)


def test_a_late_query_is_scored_with_the_running_means_and_says_so(model):
    engine = engine_with(model, deadline_ms=3_600_000)
    state, log = MemoryState(), Log()
    seen = [query(f"w{k}", user=f"w{k}", items=("i1", "i2", "i3"), hour=float(k)) for k in range(3)]
    run(engine, state, [log.rec(q) for q in seen])  # exact: the means learn i1..i3
    exact = np.stack([model.embed(q.context, [c.to_dict() for c in q.candidates]) for q in seen])
    batch = run(engine, state, [log.rec(late("r1", items=("i1", "i2", "i9")))])
    (pred,), (dec,) = outputs(batch, "predictions"), outputs(batch, "decisions")
    assert dec["approximated"] == [0, 1, 2] and pred["approximated"] == ["i1", "i2", "i9"]
    used = JoinRecord.unpack(state.decisions["r1"]).embeddings
    assert np.allclose(used[0], exact[:, 0].mean(axis=0), atol=1e-5)  # i1's mean over the three contexts
    assert np.allclose(used[1], exact[:, 1].mean(axis=0), atol=1e-5)
    assert np.allclose(used[2], exact.reshape(-1, exact.shape[-1]).mean(axis=0), atol=1e-5)  # unseen: population
    user = engine._caches[model.version].fresh("u1")
    assert dec["scores"] == pytest.approx(user.predict_many(used.astype(np.float64)).tolist())
    assert dec["propensity"] == dec["pmf"][dec["chosen_index"]]
    assert batch.counts["queries_approximated"] == 1 and batch.counts["candidates_approximated"] == 3


def test_feedback_on_an_approximated_candidate_learns_from_the_features_used(model):
    engine = engine_with(model)
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("w", user="w", items=("i1", "i2")))])
    run(engine, state, [log.rec(late("r1", items=("i1", "i2")))])
    used = JoinRecord.unpack(state.decisions["r1"]).embeddings
    run(engine, state, [log.rec(feedback("r1", "i2", reward=4.0))])
    learned = load_user_model(state.users[(model.version, "u1")])
    expected = engine._caches[model.version].fresh("u1")
    expected.learn_one(used[1].astype(np.float64), 4.0)
    assert np.allclose(learned.posterior()[0], expected.posterior()[0])


def test_a_reread_batch_re_emits_the_decision_as_made_though_the_means_moved(model):
    engine = engine_with(model)
    state, log = MemoryState(), Log()
    run(engine, state, [log.rec(query("w0", user="w", items=("i1", "i2")))])
    record = log.rec(late("r1", items=("i1", "i2")))
    first = run(engine, state, [record])
    run(engine, state, [log.rec(query("w1", user="w", items=("i1", "i2"), hour=20.0))])  # the means move
    again = run(engine, state, [record])
    assert again.outputs.predictions == first.outputs.predictions
    assert again.outputs.records == first.outputs.records
    assert again.counts["predictions_redelivered"] == 1


def test_a_query_without_a_deadline_in_a_late_batch_is_exact(model):
    engine = engine_with(model)
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(late("r1", items=("i1", "i2"))), log.rec(query("r2", items=("i1", "i2")))])
    decs = {d["request_id"]: d for d in outputs(batch, "decisions")}
    assert decs["r1"]["approximated"] == [0, 1] and "approximated" not in decs["r2"]
    assert reconciles(batch.counts)


def test_a_query_may_turn_the_deadline_setting_off_for_itself(model):
    engine = engine_with(model, deadline_ms=100.0)
    state, log = MemoryState(), Log()
    old = query("r1", ts=T0 - 10)
    off = Query("r2", "u1", T0 - 10, {"hour": 3.0}, old.candidates, 1, 0.0)
    batch = run(engine, state, [log.rec(old), log.rec(off)])
    decs = {d["request_id"]: d for d in outputs(batch, "decisions")}
    assert decs["r1"]["approximated"] == [0, 1, 2, 3] and "approximated" not in decs["r2"]


def test_a_record_that_breaks_the_feature_net_under_a_deadline_is_a_dead_letter(model):
    engine = Engine(PoisonedModel(model), make_policy("greedy"), learner="river", join_window_s=60,
                    clock=lambda: T0, anytime=Anytime(deadline_ms=3_600_000, chunk_rows=3, clock=lambda: T0))
    state, log = MemoryState(), Log()
    batch = run(engine, state, [log.rec(query("a")), log.rec(query("b", poison=1.0)), log.rec(query("c"))])
    assert [p["request_id"] for p in outputs(batch, "predictions")] == ["a", "c"]
    assert [(d.reason, d.record.offset) for d in batch.outputs.dead] == [("embedding_failed", 1)]
    assert all("approximated" not in d for d in outputs(batch, "decisions"))


def test_the_reserve_follows_rfc_6298_over_the_measured_tails():
    """The first tail sets the mean and half of it as the deviation; later ones move them by 1/8 and 1/4.
    Zero is a measurement (a tail that fell to nothing lowers the reserve again); NaN and negatives are not."""
    a = Anytime(reserve_ms=5)
    a.observe_tail(0.010)
    assert a.reserve == pytest.approx(0.010 + 4 * 0.005)
    a.observe_tail(0.020)
    dev, tail = 0.75 * 0.005 + 0.25 * 0.010, 0.875 * 0.010 + 0.125 * 0.020
    assert a.reserve == pytest.approx(tail + 4 * dev)
    a.observe_tail(0.002)
    dev, tail = 0.75 * dev + 0.25 * abs(0.002 - tail), 0.875 * tail + 0.125 * 0.002
    assert a.reserve == pytest.approx(tail + 4 * dev)
    for bad in (float("nan"), -1.0):
        a.observe_tail(bad)
    assert a.reserve == pytest.approx(tail + 4 * dev)
    for _ in range(200):
        a.observe_tail(0.0)
    assert a.reserve == 0.005  # back to the setting


def test_a_measured_tail_longer_than_the_deadline_leaves_no_budget(model):
    anytime = Anytime(deadline_ms=3_600_000, reserve_ms=5, clock=lambda: T0)
    engine = Engine(model, make_policy("greedy"), learner="river", join_window_s=60, clock=lambda: T0,
                    anytime=anytime)
    state, log = MemoryState(), Log()
    first = run(engine, state, [log.rec(query("r1"))])
    assert "approximated" not in outputs(first, "decisions")[0] and first.features_ready is not None
    for _ in range(3):  # the shell measured commits and publishing taking two hours
        anytime.observe_tail(7200.0)
    assert anytime.reserve > 3600
    (dec,) = outputs(run(engine, state, [log.rec(query("r2"))]), "decisions")
    assert dec["approximated"] == [0, 1, 2, 3]


class GatedModel:
    """The real feature net, except that a query whose context has ``gate`` waits until the test opens it."""

    def __init__(self, model: FeatureModel):
        import threading

        self._m = model
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self._m, name)

    def embed_many(self, queries):
        if any("gate" in ctx for ctx, _ in queries):
            self.gate.wait(5)  # bounded: an engine that waited for it fails the test instead of hanging
        return self._m.embed_many(queries)


def test_a_chunk_that_finishes_after_its_budget_still_teaches_the_means(model):
    gated = GatedModel(model)
    anytime = Anytime(reserve_ms=5, clock=lambda: T0)
    engine = Engine(gated, make_policy("greedy"), learner="river", join_window_s=60, clock=lambda: T0,
                    anytime=anytime)
    state, log = MemoryState(), Log()
    slow = Query("r1", "u1", T0, {"hour": 3.0, "gate": 1.0}, tuple(Item(i) for i in ("i1", "i2")), 1, 50.0)
    (first,) = outputs(run(engine, state, [log.rec(slow)]), "decisions")
    assert first["approximated"] == [0, 1]  # the gate held the chunk past its 45 ms budget
    gated.gate.set()
    anytime._pool.submit(lambda: None).result()  # the pool's one thread has finished the late chunk
    run(engine, state, [log.rec(late("r2", items=("i1", "i2")))])
    used = JoinRecord.unpack(state.decisions["r2"]).embeddings
    assert np.allclose(used, model.embed(slow.context, [c.to_dict() for c in slow.candidates]), atol=1e-6)


def test_under_a_deadline_the_chunks_read_and_fill_the_feature_cache(model):
    from features.cache import FeatureCaches

    caches = FeatureCaches(capacity=1000, kinds=("mlp",))
    engine = Engine(model, make_policy("greedy"), learner="river", join_window_s=60, clock=lambda: T0,
                    feature_caches=caches, anytime=Anytime(deadline_ms=3_600_000, chunk_rows=3, clock=lambda: T0))
    state, log = MemoryState(), Log()
    q = query("r1", items=("i1", "i2", "i3", "i4", "i5"))
    run(engine, state, [log.rec(q)])
    run(engine, state, [log.rec(query("r2", items=("i1", "i2", "i3", "i4", "i5")))])  # the same inputs again
    used = JoinRecord.unpack(state.decisions["r2"]).embeddings
    assert np.allclose(used, model.embed(q.context, [c.to_dict() for c in q.candidates]), atol=1e-6)
    assert caches.figures()["hits"] == 5 and caches.figures()["misses"] == 5


class _Net:
    """A stand-in feature net, numpy only: row = (query number, item number); ``gate`` holds every call."""

    version, output_dim = "fake", 2

    def __init__(self, fail: bool = False):
        self.calls: list[list[str]] = []
        self.gate, self.started = threading.Event(), threading.Event()
        self.gate.set()
        self.fail = fail

    def embed_many(self, sub):
        self.started.set()
        self.gate.wait(5)  # bounded: an engine that waited for a held chunk fails the test instead of hanging
        self.calls.append([it["id"] for _, items in sub for it in items])
        if self.fail:
            raise RuntimeError("broken chunk")
        return ([np.array([[ctx["q"], float(it["id"][1:])] for it in items], dtype=np.float32) for ctx, items in sub],
                [() for _ in sub])


def _fake_query(k: int, ts: float, deadline_ms: float | None) -> tuple[Query, tuple]:
    items = (f"i{10 * k + 1}", f"i{10 * k + 2}")
    q = Query(f"r{k}", "u1", ts, {"q": float(k)}, tuple(Item(i) for i in items), deadline_ms=deadline_ms)
    return q, ({"q": float(k)}, [{"id": i} for i in items])


def test_rows_are_computed_earliest_deadline_first_then_those_without_one():
    net = _Net()
    anytime = Anytime(reserve_ms=5, chunk_rows=1, clock=lambda: T0)
    qs = [_fake_query(0, T0, 0), _fake_query(1, T0, 60_000), _fake_query(2, T0, 30_000)]
    out = anytime.embed(net.embed_many, net, [q for q, _ in qs], [x for _, x in qs])
    assert net.calls == [["i21"], ["i22"], ["i11"], ["i12"], ["i1"], ["i2"]]
    assert [e.approximated for e in out] == [(), (), ()] and out[2].rows.tolist() == [[2.0, 21.0], [2.0, 22.0]]


def test_a_query_whose_budget_ends_exactly_now_is_not_computed():
    net = _Net()
    anytime = Anytime(reserve_ms=0, clock=lambda: T0)
    q, x = _fake_query(1, T0 - 0.5, 500)  # ts + 0.5 s == now
    (out,) = anytime.embed(net.embed_many, net, [q], [x])
    assert net.calls == [] and out.approximated == (0, 1)


def test_a_late_chunk_that_failed_teaches_nothing_and_breaks_no_later_batch():
    net = _Net(fail=True)
    net.gate.clear()
    reads = iter(range(100))

    def clock():  # the budget's end is read once the chunk runs, so the chunk is late, not cancelled
        if next(reads) == 1:
            net.started.wait()
        return T0

    anytime = Anytime(reserve_ms=0, clock=clock)
    q, x = _fake_query(1, T0, 1)  # a 1 ms budget, and the chunk is held past it
    (out,) = anytime.embed(net.embed_many, net, [q], [x])
    assert out.approximated == (0, 1)
    net.gate.set()
    anytime.idle()  # the late chunk has raised by now
    net.fail = False
    q, x = _fake_query(2, T0, None)
    (out,) = anytime.embed(net.embed_many, net, [q], [x])
    assert out.approximated == () and len(anytime.means(net)) == 2  # only this batch's rows were learned


def test_the_means_of_four_feature_net_versions_are_kept():
    anytime = Anytime()
    nets = [SimpleNamespace(version=f"v{k}", output_dim=2) for k in range(5)]
    first = [anytime.means(n) for n in nets[:4]]
    assert all(anytime.means(n) is m for n, m in zip(nets[:4], first))
    anytime.means(nets[4])  # a fifth: the oldest goes
    assert anytime.means(nets[1]) is first[1] and anytime.means(nets[0]) is not first[0]


def test_anytime_defaults_are_no_deadline_a_5_ms_reserve_and_256_row_chunks():
    a = Anytime()
    assert a.deadline(Query("r", "u1", T0, {}, (Item("i1"),))) is None  # no deadline unless one is set
    assert (a.reserve, a.chunk_rows, a.items) == (0.005, 256, 100_000)
    assert a._clock is time.time  # epoch seconds, like a query's ts
    assert Anytime(chunk_rows=0).chunk_rows == 1 and Anytime(chunk_rows=1).chunk_rows == 1


def test_a_deadline_is_the_queries_own_milliseconds_after_its_ts_else_the_setting():
    def q(ms):
        return Query("r", "u1", T0, {}, (Item("i1"),), 1, ms)

    a = Anytime(deadline_ms=250.0)
    assert a.deadline(q(None)) == T0 + 0.25
    assert a.deadline(q(0.5)) == T0 + 0.0005 and a.deadline(q(1.0)) == T0 + 0.001
    assert a.deadline(q(0.0)) is None  # 0 turns the setting off for this query
    assert a.applies([q(0.0), q(None)]) and not a.applies([q(0.0)])
    assert Anytime(deadline_ms=0.5).deadline(q(None)) == T0 + 0.0005
    assert Anytime().deadline(q(None)) is None and not Anytime().applies([q(None)])


class _SlowNet:
    """A stand-in net (numpy only) whose call for query 0 takes ``slow_s``; it records the thread of each call."""

    version, output_dim = "slow", 2

    def __init__(self, slow_s: float = 1.0):
        self.slow_s = slow_s
        self.started = threading.Event()
        self.threads: list[threading.Thread] = []

    def embed_many(self, sub):
        self.started.set()
        self.threads.append(threading.current_thread())
        if any(ctx["q"] == 0.0 for ctx, _ in sub):
            threading.Event().wait(self.slow_s)
        return ([np.array([[ctx["q"], float(it["id"][1:])] for it in items], dtype=np.float32) for ctx, items in sub],
                [() for _ in sub])


def test_past_its_budget_a_running_chunk_is_left_late_the_queued_ones_cancelled_and_no_deadline_waited_for():
    """Query 0 (a 1 ms budget) has two chunks: the first is still running when the budget ends (late: its
    rows come too late for this batch), the second never starts (cancelled). Query 1 has no deadline: its
    chunk is waited for, behind the late one, and is exact. The batch waits no longer than the budget for
    query 0, and every chunk runs on the anytime pool's one thread, one after another."""
    net = _SlowNet(slow_s=1.0)
    reads = iter(range(100))

    def clock():  # the budget's end is read once the first chunk runs: it is late, not cancelled
        if next(reads) == 1:
            net.started.wait()
        return T0

    anytime = Anytime(reserve_ms=0, chunk_rows=1, clock=clock)
    (q0, x0), (q1, x1) = _fake_query(0, T0, 1), _fake_query(1, T0, 0)
    out = anytime.embed(net.embed_many, net, [q0, q1], [x0, x1])
    assert out[0].approximated == (0, 1)  # neither of query 0's rows counts, though the first one finished
    assert out[1].approximated == () and out[1].rows.tolist() == [[1.0, 11.0], [1.0, 12.0]]
    assert [e.rows.dtype for e in out] == [np.float32, np.float32]  # the feature net's dtype
    assert len(net.threads) == 3  # 0's first chunk (late), 1's two chunks; 0's second chunk was cancelled
    assert len(set(net.threads)) == 1 and net.threads[0].name.startswith("eddy-anytime")
    anytime.idle()
    assert len(anytime.means(net)) == 2  # query 1's items; query 0's late row is learned at the next batch
    anytime.embed(net.embed_many, net, [], [])
    assert len(anytime.means(net)) == 3 and anytime.means(net).expected(["i1"]).tolist() == [[0.0, 1.0]]


class _OneBadQueryNet:
    """A stand-in net that fails for query 0 and reads query 1's second candidate from a coarsened entry."""

    version, output_dim = "bad", 2

    def embed_many(self, sub):
        if any(ctx["q"] == 0.0 for ctx, _ in sub):
            raise ValueError("query 0 breaks the net")
        return ([np.array([[ctx["q"], float(it["id"][1:])] for it in items], dtype=np.float32) for ctx, items in sub],
                [(1,) for _ in sub])


def test_a_query_run_again_alone_after_its_chunk_failed_keeps_its_coarsened_candidates():
    net = _OneBadQueryNet()
    anytime = Anytime(deadline_ms=3_600_000, clock=lambda: T0)
    (q0, x0), (q1, x1) = _fake_query(0, T0, None), _fake_query(1, T0, None)
    bad, good = anytime.embed(net.embed_many, net, [q0, q1], [x0, x1])  # one chunk: both queries
    assert bad.rows is None and str(bad.error) == "query 0 breaks the net"
    assert good.error is None and good.rows.tolist() == [[1.0, 11.0], [1.0, 12.0]]
    assert good.coarsened == (1,) and good.approximated == ()


class _BadItemNet:
    """A stand-in net that fails on item ``i2`` and reads each query's first row of a call from a coarsened entry."""

    version, output_dim = "bad-item", 2

    def embed_many(self, sub):
        if any(it["id"] == "i2" for _, items in sub for it in items):
            raise ValueError("item i2 breaks the net")
        return ([np.array([[ctx["q"], float(it["id"][1:])] for it in items], dtype=np.float32) for ctx, items in sub],
                [(0,) for _ in sub])


def test_a_query_whose_later_chunk_breaks_the_net_is_an_error_though_its_first_chunk_was_computed():
    """Query 0's first row (a chunk of its own) is computed, coarsened; its second breaks the net, alone too:
    the query is an error with no rows, no coarsened candidates, and teaches the means nothing."""
    net = _BadItemNet()
    anytime = Anytime(deadline_ms=3_600_000, chunk_rows=1, clock=lambda: T0)
    (q0, x0), (q1, x1) = _fake_query(0, T0, None), _fake_query(1, T0, None)
    bad, good = anytime.embed(net.embed_many, net, [q0, q1], [x0, x1])
    assert bad.rows is None and str(bad.error) == "item i2 breaks the net" and bad.coarsened == ()
    assert good.rows.tolist() == [[1.0, 11.0], [1.0, 12.0]] and good.coarsened == (0, 1)  # a call per row
    assert len(anytime.means(net)) == 2  # query 1's two items only


def test_a_query_whose_budget_ends_exactly_now_does_not_end_another_querys_budget():
    """Query 0's budget ends exactly now (not computed); query 1's ends an hour ahead: the batch's budget
    is query 1's, so its chunk (0.2 s) is waited for, not cut at zero."""
    net = _SlowNet(slow_s=0.2)
    anytime = Anytime(reserve_ms=0, clock=lambda: T0)
    q0, x0 = _fake_query(2, T0 - 0.5, 500)  # ts + 0.5 s == now
    q1, x1 = _fake_query(0, T0, 3_600_000)  # query 0 of _SlowNet: the slow one
    out = anytime.embed(net.embed_many, net, [q0, q1], [x0, x1])
    assert out[0].approximated == (0, 1) and out[1].approximated == ()
    assert out[1].rows.tolist() == [[0.0, 1.0], [0.0, 2.0]]
