"""Model selection in the engine, without a broker: two real feature nets served at once.

What matters: the logged propensity is the true probability of the shown item over
both draws (version, then item); the version that answered and its probability are
logged; every version's user weights learn; the selector's state and the shadow
errors are part of the batch's write (so a batch that is not committed changes nothing).
"""

from __future__ import annotations

from types import SimpleNamespace

import msgspec
import numpy as np
import pytest
import torch

from bandits import Exp4, make_policy
from features.model import FeatureModel
from learners import load_user_model
from stream import events
from stream.engine import Engine
from stream.engine.joins import JoinRecord
from stream.engine.selection import PartitionState, Selection, decode_state, mean_weights, merged_errors
from tests.unit.test_engine import T0, Log, MemoryState, feedback, outputs, query
from tests.unit.test_engine_learning import PartitionedState

pytestmark = pytest.mark.unit


class SelectionState(MemoryState):
    def __init__(self) -> None:
        super().__init__()
        self.selection: dict[int, bytes] = {}

    def load_selection(self, partition):
        return self.selection.get(partition)

    def commit(self, w) -> None:
        super().commit(w)
        self.selection.update(w.selection)


class PartitionedSelectionState(PartitionedState, SelectionState):
    """Users filed under the partition that wrote them (``{pN}:`` keys), and the selection state."""


def challenger(model: FeatureModel, version: str, seed: int) -> FeatureModel:
    """Another real MLP: the live net's weights moved by seeded noise, under its own version."""
    net = type(model.net)(model.config)
    net.load_state_dict(model.net.state_dict())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return FeatureModel(net, model.encoder, version=version, user_weights=model.user_weights, meta=model.meta)


@pytest.fixture(scope="module")
def model(trained_model_dir) -> FeatureModel:
    return FeatureModel.load(trained_model_dir)


def engine_with(model, mode: str, **kw) -> Engine:
    e = Engine(model, make_policy("epsilon_greedy:epsilon=0.2"), learner="river", join_window_s=60.0, seed=7,
               clock=lambda: T0)
    e.serve_selection(Selection([challenger(model, "ch1", 1)], mode=mode, **kw))
    return e


def run(engine, state, records):
    batch = engine.process(records, state)
    state.commit(batch.write)
    engine.commit(batch)
    return batch


def test_exp3_logs_the_answering_version_and_the_propensity_over_both_draws(model):
    e = engine_with(model, "exp3", eta=0.1, gamma=0.2)
    state, log = SelectionState(), Log()
    batch = run(e, state, [log.rec(query(f"r{i}", user=f"u{i % 3}")) for i in range(40)])
    decisions = outputs(batch, "decisions")
    answered = {d["feature_net_version"] for d in decisions}
    assert answered == {model.version, "ch1"}  # both versions answer some requests
    policy = make_policy("epsilon_greedy:epsilon=0.2")
    for d in decisions:
        q = d["version_weights"]
        assert d["version_probability"] == q[d["feature_net_version"]] and abs(sum(q.values()) - 1) < 1e-9
        # pmf[a] = sum_v q_v * pi_v(a): recomputed from every version's logged scores
        expected = sum(q[v] * policy.decide_many([np.array(s)], [d["seed"]])[0].pmf
                       for v, s in d["version_scores"].items())
        np.testing.assert_allclose(d["pmf"], expected, atol=1e-12)
        assert d["propensity"] == d["pmf"][d["chosen_index"]]
        assert d["scores"] == d["version_scores"][d["feature_net_version"]]
        assert d["selector"].startswith("exp3/1?")
        # the version draw is reproducible from the logged seed: u = default_rng((seed, 1)) on q's inverse CDF
        u, acc = np.random.default_rng((d["seed"], 1)).random(), 0.0
        for v, p in q.items():
            acc += p
            if u < acc:
                break
        assert d["feature_net_version"] == v
    # the join record keeps the other version's embeddings
    rec = JoinRecord.unpack(state.decisions[decisions[0]["request_id"]])
    other = ({model.version, "ch1"} - {decisions[0]["feature_net_version"]}).pop()
    assert set(rec.others) == {other} and rec.others[other].shape == rec.embeddings.shape


def test_a_request_read_again_gets_the_same_version_and_item(model):
    first = outputs(run(engine_with(model, "exp3", gamma=0.5), SelectionState(), [Log().rec(query("same"))]),
                    "decisions")[0]
    again = outputs(run(engine_with(model, "exp3", gamma=0.5), SelectionState(), [Log().rec(query("same"))]),
                    "decisions")[0]
    assert first == again


def test_feedback_teaches_the_selector_and_every_version_and_is_written_with_the_batch(model):
    e = engine_with(model, "exp3", eta=0.5, gamma=0.1)
    state, log = SelectionState(), Log()
    run(e, state, [log.rec(query("r1"))])
    d = JoinRecord.unpack(state.decisions["r1"]).decision
    batch = e.process([log.rec(feedback("r1", "i2", reward=4.0))], state)
    assert set(batch.write.selection) == {0}
    assert {fn for fn, _ in batch.write.users} == {model.version, "ch1"}  # both versions' user weights learn
    assert not state.selection  # nothing until the batch commits
    state.commit(batch.write)
    e.commit(batch)
    s = decode_state(state.selection[0])
    errs = {v: (4.0 - sc[1]) ** 2 for v, sc in d.version_scores.items()}
    assert {v: e[1] for v, e in s.errors.items()} == pytest.approx(errs)
    answering = d.feature_net_version
    loss = min(1.0, errs[answering] / 4.0) / d.version_probability
    assert s.losses[answering] == pytest.approx(loss) and s.n == 1
    assert merged_errors([state.selection[0]])[answering] == (1, pytest.approx(errs[answering]))
    learned = load_user_model(state.users[("ch1", "u1")])
    assert learned.n_obs == 1


def test_a_batch_that_is_not_committed_leaves_the_selector_as_it_was(model):
    e = engine_with(model, "exp3", eta=0.5)
    state, log = SelectionState(), Log()
    run(e, state, [log.rec(query("r1")), log.rec(query("r2"))])
    run(e, state, [log.rec(feedback("r1", "i1", reward=5.0))])
    before = decode_state(state.selection[0])
    e.process([log.rec(feedback("r2", "i1", reward=1.0))], state)  # fenced: never committed
    e.forget()
    batch = run(e, state, [log.rec(query("r3"))])
    assert decode_state(state.selection[0]) == before
    q = outputs(batch, "decisions")[0]["version_weights"]
    sel = e.selection.selector(before, [model.version, "ch1"])
    assert q == pytest.approx(sel.predict_proba_one())


def test_shadow_mode_always_answers_with_the_live_version_and_tracks_both_errors(model):
    e = engine_with(model, "shadow")
    state, log = SelectionState(), Log()
    batch = run(e, state, [log.rec(query(f"r{i}")) for i in range(10)])
    decisions = outputs(batch, "decisions")
    assert {d["feature_net_version"] for d in decisions} == {model.version}
    assert all(d["version_probability"] == 1.0 and d["selector"] == "shadow" for d in decisions)
    assert all(d["version_weights"] == {model.version: 1.0, "ch1": 0.0} for d in decisions)
    plain = Engine(model, make_policy("epsilon_greedy:epsilon=0.2"), learner="river", join_window_s=60.0, seed=7,
                   clock=lambda: T0)
    alone = outputs(run(plain, MemoryState(), [Log().rec(query(f"r{i}")) for i in range(10)]), "decisions")
    assert [d["pmf"] for d in decisions] == [d["pmf"] for d in alone]  # the shadow changes nothing shown
    run(e, state, [log.rec(feedback(f"r{i}", "i1", reward=3.0)) for i in range(10)])
    errors = decode_state(state.selection[0]).errors
    assert set(errors) == {model.version, "ch1"} and all(n == 10 for n, _ in errors.values())
    assert decode_state(state.selection[0]).n == 0  # no selector learns in shadow mode


def test_exp4_explores_over_the_weighted_mean_of_the_versions_scores(model):
    e = engine_with(model, "exp4", eta=1.0, gamma=0.0)
    state, log = SelectionState(), Log()
    d = outputs(run(e, state, [log.rec(query("r1"))]), "decisions")[0]
    w = d["version_weights"]
    mixed = sum(w[v] * np.array(s) for v, s in d["version_scores"].items())
    np.testing.assert_allclose(d["scores"], mixed)
    assert d["feature_net_version"] == model.version and d["version_probability"] == 1.0


def test_without_selection_a_decision_has_no_selection_fields(model):
    plain = Engine(model, make_policy("epsilon_greedy:epsilon=0.2"), learner="river", join_window_s=60.0, seed=7)
    raw = run(plain, MemoryState(), [Log().rec(query("r1"))]).outputs.records[0][2]
    assert b"version_scores" not in raw and b"selector" not in raw
    assert "version_weights" not in msgspec.json.decode(raw)


def test_every_partition_decides_on_the_losses_learned_in_all_partitions(model):
    e = engine_with(model, "exp3", eta=0.5, gamma=0.1)
    state, log = SelectionState(), Log()
    run(e, state, [log.rec(query(f"r{i}"), partition=0) for i in range(5)])
    run(e, state, [log.rec(feedback(f"r{i}", "i1", reward=5.0), partition=0) for i in range(5)])
    own = decode_state(state.selection[0])
    assert own.n == 5 and 1 not in state.selection
    expected = e.selection.selector(own, [model.version, "ch1"]).predict_proba_one()
    assert expected != {model.version: 0.5, "ch1": 0.5}
    d = outputs(run(e, state, [log.rec(query("p1", user="u9"), partition=1)]), "decisions")[0]
    assert d["version_weights"] == pytest.approx(expected)  # partition 1 learned nothing, yet decides on 0's
    d0 = outputs(run(e, state, [log.rec(query("p0", user="u9"), partition=0)]), "decisions")[0]
    assert d0["version_weights"] == pytest.approx(expected)  # and partition 0 counts its own losses once
    other = engine_with(model, "exp3", eta=0.5, gamma=0.1)  # another worker: it reads partition 0's from Redis
    other.selection.share(dict(state.selection))
    d2 = outputs(run(other, SelectionState(), [Log().rec(query("p1b", user="u9"), partition=1)]), "decisions")[0]
    assert d2["version_weights"] == pytest.approx(expected)


def test_a_challenger_has_a_feature_cache_of_its_own_when_the_worker_caches_features(model):
    from features.cache import FeatureCaches

    e = Engine(model, make_policy("epsilon_greedy:epsilon=0.2"), learner="river", join_window_s=60.0, seed=7,
               clock=lambda: T0, feature_caches=FeatureCaches(capacity=1000))
    e.serve_selection(Selection([challenger(model, "ch1", 1)], mode="shadow"))
    state, log = SelectionState(), Log()
    first = outputs(run(e, state, [log.rec(query("r1"))]), "decisions")[0]
    cache = e.selection.feature_caches["ch1"]
    assert cache.version == "ch1" and cache.misses == 4 and cache.hits == 0
    again = outputs(run(e, state, [log.rec(query("r2"))]), "decisions")[0]
    assert cache.hits == 4  # the same candidates and context: the challenger's f comes from its cache
    assert again["version_scores"]["ch1"] == first["version_scores"]["ch1"]  # a cached f scores the same


def test_a_coarsened_challenger_row_is_flagged_when_its_scores_decide(model):
    """With LSH-coarsened caches, each version has a cache of its own; the decision flags the coarsened
    candidates of the features that decided: Exp4's ensemble reads both versions'."""
    from features.cache import FeatureCaches

    e = Engine(model, make_policy("greedy"), learner="river", join_window_s=60.0, seed=7, clock=lambda: T0,
               feature_caches=FeatureCaches(capacity=1000, lsh_bits=8, kinds=("mlp",)))
    e.serve_selection(Selection([challenger(model, "ch1", 1)], mode="exp4"))
    state, log = SelectionState(), Log()
    decisions = []
    for rid, hour in (("n1", 3.0), ("n2", 3.001)):
        batch = e.process([log.rec(query(rid, hour=hour))], state)
        state.commit(batch.write)
        e.commit(batch)
        decisions += outputs(batch, "decisions")
    assert "coarsened" not in decisions[0] and decisions[1]["coarsened"] == [0, 1, 2, 3]
    assert set(decisions[1]["version_scores"]) == {model.version, "ch1"}
    assert e.selection.feature_caches["ch1"].coarsened == 4  # the challenger's own cache coarsened too


def test_eddy_models_merges_every_partitions_errors_and_averages_the_selectors_weights():
    """What ``eddy models`` shows: errors summed over partitions; weights averaged over the partitions
    whose selector has learned (a version one of them lacks counts 0 there)."""
    enc = msgspec.json.Encoder()
    blobs = [enc.encode(PartitionState(errors={"v1": [2, 1.0], "v2": [1, 4.0]}, weights={"v1": 0.75, "v2": 0.25})),
             enc.encode(PartitionState(errors={"v1": [3, 0.5]}, weights={"v1": 0.25})),
             enc.encode(PartitionState(errors={"v2": [1, 2.0]}))]
    assert merged_errors(blobs) == {"v1": (5, 1.5), "v2": (2, 6.0)}
    assert mean_weights(blobs) == {"v1": 0.5, "v2": 0.125}
    assert mean_weights([blobs[2]]) == {}


def _decision(selector: str, version_scores: dict, *, answering: str = "v1", probability: float = 1.0):
    return events.Decision("r1", "u1", 1.0, {}, (events.Item("a"), events.Item("b")), (0.0, 0.0), (0.5, 0.5), 0,
                           0.5, "greedy", "greedy/1", 1, answering, 0, selector=selector,
                           version_probability=probability, version_scores=version_scores)


def _learned(sel: Selection, decision, reward: float, partition: int = 0) -> PartitionState:
    fb = events.Feedback("r1", "u1", "a", reward, 2.0)
    sel.learn(None, fb, decision, {}, 0, partition, SelectionState(), None)
    out = SimpleNamespace(write=SimpleNamespace(selection={}))
    sel.write(out)
    return decode_state(out.write.selection[partition])


def test_exp4_learns_every_versions_scaled_squared_error_and_weighs_its_own_partition_once():
    sel = Selection([], mode="exp4", eta=1.0, gamma=0.0, loss_scale=4.0)
    tag = sel.selector_name()
    s = _learned(sel, _decision(tag, {"v1": (1.0, 0.0), "v2": (2.0, 0.0), "v3": (5.0, 0.0)}), 1.0)
    assert s.errors == {"v1": [1, 0.0], "v2": [1, 1.0], "v3": [1, 16.0]}
    assert s.losses == {"v1": 0.0, "v2": 0.25, "v3": 1.0} and s.n == 1  # 16 / 4 is capped at a loss of 1
    sel.commit()
    sel.begin()
    s = _learned(sel, _decision(tag, {"v1": (1.0, 0.0), "v2": (2.0, 0.0), "v3": (5.0, 0.0)}), 2.0)
    assert s.errors == {"v1": [2, 1.0], "v2": [2, 1.0], "v3": [2, 25.0]}
    assert s.losses == {"v1": 0.25, "v2": 0.25, "v3": 2.0} and s.n == 2
    expected = Exp4(["v1", "v2", "v3"], eta=1.0, gamma=0.0)
    expected.learn_one({"v1": 0.25, "v2": 0.25, "v3": 1.0})
    expected.learn_one({"v1": 0.0, "v2": 0.0, "v3": 1.0})
    assert s.weights == pytest.approx(expected.predict_proba_one())


def test_exp3_learns_the_answering_versions_loss_over_its_probability():
    sel = Selection([], mode="exp3", eta=1.0, gamma=0.1, loss_scale=4.0)
    s = _learned(sel, _decision(sel.selector_name(), {"v1": (1.0, 0.0), "v2": (2.0, 0.0)}, answering="v2",
                                probability=0.25), 1.0)
    assert s.losses == {"v1": 0.0, "v2": pytest.approx(0.25 / 0.25)} and s.n == 1


def test_a_decision_made_in_shadow_mode_teaches_the_errors_but_not_a_selector_switched_on_since():
    sel = Selection([], mode="exp3", eta=1.0, gamma=0.1)
    s = _learned(sel, _decision("shadow", {"v1": (1.0, 0.0), "v2": (2.0, 0.0)}), 1.0)
    assert s.errors == {"v1": [1, 0.0], "v2": [1, 1.0]} and s.losses == {} and s.n == 0


def test_in_shadow_mode_no_selector_learns_even_from_a_decision_an_exp4_selector_made():
    """Switched back to shadow: feedback on a decision made under Exp4 teaches the errors only."""
    sel = Selection([], mode="shadow")
    s = _learned(sel, _decision("exp4/1?eta=0.05&gamma=0.05", {"v1": (1.0, 0.0), "v2": (2.0, 0.0)}), 1.0)
    assert s.errors == {"v1": [1, 0.0], "v2": [1, 1.0]} and s.losses == {} and s.n == 0 and s.weights == {}


def test_after_a_rebalance_the_challengers_users_learn_on_from_their_stored_weights(model):
    """Each feedback teaches the challenger's model of the user once, from its latest weights: from the
    engine's cache between batches, from the store after a rebalance (the engine forgets its caches),
    and the write goes to the record's partition."""
    e = engine_with(model, "exp3", eta=0.5, gamma=0.1)
    state, log = SelectionState(), Log()
    run(e, state, [log.rec(query(f"r{i}"), partition=3) for i in range(1, 6)])
    batch = run(e, state, [log.rec(feedback("r1", "i2", reward=4.0), partition=3)])
    assert batch.counts["selection_learned"] == 1 and batch.write.users[("ch1", "u1")][1] == 3
    run(e, state, [log.rec(feedback("r2", "i1", reward=1.0), partition=3)])
    assert load_user_model(state.users[("ch1", "u1")]).n_obs == 2
    e.forget()
    run(e, state, [log.rec(feedback("r3", "i1", reward=1.0), partition=3)])
    assert load_user_model(state.users[("ch1", "u1")]).n_obs == 3
    batch = run(e, state, [log.rec(feedback("r4", "i1", reward=1.0), partition=3),
                           log.rec(feedback("r5", "i2", reward=2.0), partition=3)])
    assert batch.counts["selection_learned"] == 2 and load_user_model(state.users[("ch1", "u1")]).n_obs == 5


class _ChallengerStoreDown(SelectionState):
    """The store answers for the live version but not for the challenger's users."""

    down = False

    def load_users(self, fn, users):
        if self.down and fn == "ch1":
            raise ConnectionError("store down")
        return super().load_users(fn, users)


def test_a_store_outage_while_loading_a_challengers_user_fails_the_batch_not_the_record(model):
    """Shadow mode: the live version answers and learns; the challenger's user is loaded for the selection."""
    e = engine_with(model, "shadow")
    state, log = _ChallengerStoreDown(), Log()
    run(e, state, [log.rec(query("r1"))])
    e.forget()
    state.down = True
    with pytest.raises(ConnectionError):
        e.process([log.rec(feedback("r1", "i2", reward=4.0))], state)


def test_a_feedback_the_selector_cannot_learn_stands_and_is_counted_and_logged(model, caplog):
    e = engine_with(model, "shadow")
    state, log = SelectionState(), Log()
    run(e, state, [log.rec(query("r1")), log.rec(query("r2"))])
    for rid in ("r1", "r2"):  # the other version's embeddings made non-finite in the stored join records
        rec = JoinRecord.unpack(state.decisions[rid])
        nan = {v: np.full_like(x, np.nan) for v, x in rec.others.items()}
        state.decisions[rid] = JoinRecord(rec.decision_bytes, rec.prediction_bytes, rec.embeddings, nan).pack()
    with caplog.at_level("WARNING", logger="eddy.engine"):
        batch = run(e, state, [log.rec(feedback("r1", "i2", reward=4.0)), log.rec(feedback("r2", "i1", reward=1.0))])
    assert batch.counts["selection_learn_failed"] == 2 and batch.counts["selection_learned"] == 0
    assert load_user_model(state.users[(model.version, "u1")]).n_obs == 2  # the answering version's updates stand
    assert ("model selection could not learn from request r1: version ch1's embedding of this item is not finite"
            in [r.getMessage() for r in caplog.records])


def test_selection_defaults_to_shadow_and_names_a_refused_setting():
    sel = Selection([])
    assert (sel.mode, sel.eta, sel.gamma, sel.loss_scale) == ("shadow", 0.05, 0.05, 4.0)
    assert sel.selector_name() == "shadow"
    with pytest.raises(ValueError) as bad_mode:
        Selection([], mode="exp5")
    assert str(bad_mode.value) == "mode must be one of shadow, exp3, exp4; got 'exp5'"
    with pytest.raises(ValueError) as bad_scale:
        Selection([], mode="exp3", loss_scale=0.0)
    assert str(bad_scale.value) == "loss_scale must be > 0; got 0.0"
    assert Selection([], loss_scale=1e-9).loss_scale == 1e-9


def test_the_selector_name_carries_its_kind_and_parameters():
    """The name goes into every decision (``selector``): it must say which selector, with which eta and gamma."""
    assert Selection([], mode="exp3", eta=0.1, gamma=0.2).selector_name() == "exp3/1?eta=0.1&gamma=0.2"
    assert Selection([], mode="exp4", eta=0.3, gamma=0.0).selector_name() == "exp4/1?eta=0.3&gamma=0.0"


def _three_candidates(seed: int = 5):
    return SimpleNamespace(query=SimpleNamespace(candidates=(events.Item("a"), events.Item("b"), events.Item("c"))),
                           seed=seed)


def test_exp3_logs_each_candidates_probability_over_the_version_draw_and_the_policys_draw():
    """Two versions that disagree on the best candidate: the logged pmf is ``q_v1 pi_v1 + q_v2 pi_v2``,
    not the answering version's ``pi`` alone, and the propensity is that pmf at the chosen candidate."""
    from bandits.base import Decision as PolicyDecision
    from stream.engine import serving
    from stream.engine.selection import _Plan

    policy = make_policy("epsilon_greedy:epsilon=0.3")
    ids = ("a", "b", "c")
    scores = {"v1": np.array([2.0, 0.0, 1.0]), "v2": np.array([0.0, 1.0, 3.0])}
    embs = {v: np.zeros((3, 2), dtype=np.float32) for v in scores}
    plan = _Plan(scores, embs, {"v1": None, "v2": None}, {"v1": 0.25, "v2": 0.75}, "v2", {})
    s = _three_candidates()
    d = serving.decide(policy, serving.policy_candidates(scores["v2"], embs["v2"], ids), s.seed)
    sel = Selection([], mode="exp3", eta=0.5, gamma=0.1)
    out, fields = sel.finish(SimpleNamespace(policy=policy), s, plan, d)
    pi1, pi2 = np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.1, 0.8])
    np.testing.assert_allclose(out.pmf, 0.25 * pi1 + 0.75 * pi2, rtol=1e-12)
    assert out.chosen == d.chosen and out.propensity == out.pmf[d.chosen]
    assert (out.policy, out.policy_version) == (d.policy, d.policy_version)
    assert isinstance(out, PolicyDecision) and not out.pmf.flags.writeable
    assert fields == {"selector": "exp3/1?eta=0.5&gamma=0.1", "version_probability": 0.75,
                      "version_weights": {"v1": 0.25, "v2": 0.75},
                      "version_scores": {"v1": (2.0, 0.0, 1.0), "v2": (0.0, 1.0, 3.0)}}
    assert all(type(x) is float for x in fields["version_scores"]["v1"])


@pytest.mark.parametrize("mode", ["shadow", "exp4", "exp3 alone"])
def test_without_a_version_draw_the_decision_is_the_policys_own_and_its_version_probability_one(mode):
    """Shadow and Exp4 draw no version; nor does Exp3 serving one version (its challenger was promoted)."""
    from stream.engine import serving
    from stream.engine.selection import _Plan

    policy = make_policy("epsilon_greedy:epsilon=0.3")
    scores = {"v1": np.array([2.0, 0.0, 1.0]), "v2": np.array([0.0, 1.0, 3.0])}
    embs = {v: np.zeros((3, 2), dtype=np.float32) for v in scores}
    weights = {"shadow": {"v1": 1.0, "v2": 0.0}, "exp4": {"v1": 0.4, "v2": 0.6}, "exp3 alone": {"v1": 1.0}}[mode]
    if mode == "exp3 alone":
        scores, embs = {"v1": scores["v1"]}, {"v1": embs["v1"]}
    plan = _Plan(scores, embs, dict.fromkeys(scores), weights, "v1", {})
    s = _three_candidates()
    d = serving.decide(policy, serving.policy_candidates(sum(weights[v] * scores[v] for v in scores), embs["v1"],
                                                         ("a", "b", "c")), s.seed)
    out, fields = Selection([], mode=mode.split()[0]).finish(SimpleNamespace(policy=policy), s, plan, d)
    assert out is d  # the policy's own decision, as drawn
    assert fields["version_probability"] == 1.0 and fields["version_weights"] == weights


def test_a_challengers_users_are_read_and_written_under_their_partition(model):
    """The store keys a user's weights by partition: after a rebalance, a challenger asked for its user
    under any other partition (None) would find nothing and start again from its prior."""
    e = engine_with(model, "shadow")
    state, log = PartitionedSelectionState(), Log()
    run(e, state, [log.rec(query(f"r{i}"), partition=3) for i in range(1, 4)])
    run(e, state, [log.rec(feedback("r1", "i2", reward=4.0), partition=3)])
    assert state.user_partition[("ch1", "u1")] == 3
    before = outputs(run(e, state, [log.rec(query("q1"), partition=3)]), "decisions")[0]["version_scores"]["ch1"]
    e.forget()  # a rebalance: the users are now only in the store
    after = outputs(run(e, state, [log.rec(query("q2"), partition=3)]), "decisions")[0]["version_scores"]["ch1"]
    assert after == before  # scored with the stored weights
    e.forget()
    run(e, state, [log.rec(feedback("r2", "i1", reward=1.0), partition=3)])
    assert load_user_model(state.users[("ch1", "u1")]).n_obs == 2 and state.user_partition[("ch1", "u1")] == 3
    e.forget()
    batch = run(e, state, [log.rec(feedback("r3", "i1", reward=2.0), partition=3)])
    assert batch.counts["selection_learned"] == 1 and load_user_model(state.users[("ch1", "u1")]).n_obs == 3


class _BrokenNet:
    """A challenger whose forward pass fails (a bad checkpoint, say); everything else is the real net's."""

    def __init__(self, model: FeatureModel) -> None:
        self._m = model

    def __getattr__(self, name):
        return getattr(self._m, name)

    def embed_many(self, inputs, **kw):
        raise RuntimeError("challenger broken")


def test_a_challenger_that_fails_leaves_the_live_version_to_answer_alone_counted_and_logged(model, caplog):
    e = Engine(model, make_policy("epsilon_greedy:epsilon=0.2"), learner="river", join_window_s=60.0, seed=7,
               clock=lambda: T0)
    e.serve_selection(Selection([_BrokenNet(challenger(model, "ch1", 1))], mode="exp3"))
    state, log = SelectionState(), Log()
    with caplog.at_level("WARNING", logger="eddy.engine"):
        batch = run(e, state, [log.rec(query("r1")), log.rec(query("r2", user="u2"))])
    plain = Engine(model, make_policy("epsilon_greedy:epsilon=0.2"), learner="river", join_window_s=60.0, seed=7,
                   clock=lambda: T0)
    alone = run(plain, MemoryState(), [Log().rec(query("r1")), Log().rec(query("r2", user="u2"))])
    assert batch.counts["selection_failed"] == 1  # once for the batch
    decisions = outputs(batch, "decisions")
    shown = [(d["scores"], d["pmf"], d["chosen_index"]) for d in decisions]
    assert shown == [(d["scores"], d["pmf"], d["chosen_index"]) for d in outputs(alone, "decisions")]
    assert all("version_scores" not in d and d["feature_net_version"] == model.version for d in decisions)
    assert [r.getMessage() for r in caplog.records] == [
        "model selection failed for a batch; the live version answers alone: challenger broken"]


def test_apprentice_mode_skips_selection_and_counts_the_batch(model):
    e = engine_with(model, "exp3")
    e.serve_default = True
    state, log = SelectionState(), Log()
    batch = run(e, state, [log.rec(query("r1")), log.rec(query("r2"))])
    assert batch.counts["selection_skipped"] == 1 and "selection_failed" not in batch.counts
    assert all("version_scores" not in d for d in outputs(batch, "decisions"))
    assert not state.selection


def test_an_empty_batch_or_an_engine_without_selection_plans_nothing():
    from collections import Counter

    from stream.engine.selection import plan_or_none

    batch = SimpleNamespace(counts=Counter())
    live = SimpleNamespace(version="v1")
    engine = SimpleNamespace(selection=Selection([]), serve_default=True, model=live)
    assert plan_or_none(engine, [], None, batch) is None and batch.counts == Counter()
    scored = [SimpleNamespace(feature_net_version="v1")]
    assert plan_or_none(SimpleNamespace(selection=None, serve_default=True, model=live), scored, None, batch) is None
    assert batch.counts == Counter()
    cheap = [SimpleNamespace(feature_net_version="v1"), SimpleNamespace(feature_net_version="cheap")]
    engine.serve_default = False
    assert plan_or_none(engine, cheap, None, batch) is None and batch.counts == Counter(selection_skipped=1)


def test_each_update_of_a_challengers_user_in_one_batch_builds_on_the_last_even_past_the_cache(model):
    """With room for one user per version, u1's second feedback in a batch must still see its first in the
    challenger's model too (the batch's own update, not the store's older state): byte for byte what an
    engine with a large cache learns."""
    states = []
    for cache_users in (1, 1000):
        e = Engine(model, make_policy("epsilon_greedy:epsilon=0.2"), learner="river", join_window_s=60.0, seed=7,
                   clock=lambda: T0, cache_users=cache_users)
        e.serve_selection(Selection([challenger(model, "ch1", 1)], mode="shadow"))
        state, log = SelectionState(), Log()
        run(e, state, [log.rec(query("r1")), log.rec(query("r2", user="u2")), log.rec(query("r3"))])
        batch = run(e, state, [log.rec(feedback("r1", "i1")), log.rec(feedback("r2", "i2", user="u2")),
                               log.rec(feedback("r3", "i3", reward=0.0))])
        assert batch.counts["selection_learned"] == 3
        states.append(state.users[("ch1", "u1")])
    assert load_user_model(states[0]).n_obs == 2 and states[0] == states[1]


class _CountingState(SelectionState):
    """Records every read of users from the store."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, dict]] = []

    def load_users(self, fn, users):
        self.reads.append((fn, dict(users)))
        return super().load_users(fn, users)


def test_a_challengers_user_is_read_from_the_store_once_per_feedback_batch(model):
    """After a rebalance, learning a feedback reads the challenger's user once (one round trip), into
    that version's cache, where the next feedback of the batch finds it."""
    e = engine_with(model, "shadow")
    state, log = _CountingState(), Log()
    run(e, state, [log.rec(query("r1"), partition=2), log.rec(query("r2"), partition=2)])
    e.forget()
    state.reads.clear()
    batch = run(e, state, [log.rec(feedback("r1", "i1"), partition=2), log.rec(feedback("r2", "i2"), partition=2)])
    assert batch.counts["selection_learned"] == 2
    assert [r for r in state.reads if r[0] == "ch1"] == [("ch1", {"u1": 2})]
    assert set(e._caches) == {model.version, "ch1"}


def _trained_vw():
    """A VW policy that has learned that item ``c`` pays: its pmf depends on the candidates' ids."""
    from bandits import Candidates

    policy = make_policy("vw:exploration=epsilon,epsilon=0.2")
    for _ in range(30):
        cands = Candidates(scores=np.zeros(3), embeddings=np.zeros((3, 2)), action_ids=("a", "b", "c"))
        policy.learn(cands, 2, 1.0, 1 / 3)
        policy.learn(cands, 0, 0.0, 1 / 3)
    return policy


@pytest.mark.parametrize("kind", ["thompson", "vw"])
def test_the_logged_pmf_over_both_draws_is_the_same_whichever_version_the_draw_picked(kind):
    """``pmf[a] = sum_v q_v pi_v(a)`` with each ``pi_v`` the policy's distribution over version v's own view
    (its scores, embeddings, user posterior, the candidates' ids, the request's seed): exactly what v's own
    decision would have been. So the mixture logged when v1 answers equals the one logged when v2 answers."""
    from learners import make_user_model
    from stream.engine import serving
    from stream.engine.selection import _Plan

    rng = np.random.default_rng(3)
    users = {}
    for v in ("v1", "v2"):  # Bayesian users with different posteriors
        users[v] = make_user_model("bayes", 2)
        for _ in range(5):
            users[v].learn_one(rng.normal(size=2), float(rng.normal()))
    policy = make_policy("thompson:n_samples=16") if kind == "thompson" else _trained_vw()
    ids = ("a", "b", "c")
    embs = {"v1": np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32),
            "v2": np.array([[0.0, 1.0], [1.0, 0.0], [-0.5, 0.2]], dtype=np.float32)}
    scores = {v: users[v].predict_many(embs[v].astype(np.float64)) for v in embs}
    s, q = _three_candidates(seed=11), {"v1": 0.3, "v2": 0.7}
    sel, engine = Selection([], mode="exp3"), SimpleNamespace(policy=policy)
    logged = {}
    for v in ("v1", "v2"):
        d = serving.decide(policy, serving.policy_candidates(scores[v], embs[v], ids, users[v]), s.seed)
        logged[v], _ = sel.finish(engine, s, _Plan(scores, embs, users, q, v, {}), d)
    np.testing.assert_allclose(logged["v1"].pmf, logged["v2"].pmf, rtol=0, atol=1e-12)
    assert abs(logged["v1"].pmf.sum() - 1) < 1e-12


def test_a_challenger_gets_no_feature_cache_when_the_worker_caches_other_kinds_only(model):
    from features.cache import FeatureCaches

    e = Engine(model, make_policy("epsilon_greedy:epsilon=0.2"), learner="river", join_window_s=60.0, seed=7,
               clock=lambda: T0, feature_caches=FeatureCaches(capacity=1000, kinds=("text",)))
    e.serve_selection(Selection([challenger(model, "ch1", 1)], mode="shadow"))
    d = outputs(run(e, SelectionState(), [Log().rec(query("r1"))]), "decisions")[0]
    assert set(d["version_scores"]) == {model.version, "ch1"} and e.selection.feature_caches == {}


def test_a_challenger_user_that_scores_a_candidate_infinite_fails_the_selection_by_name(model, caplog):
    """Weights so large that a score overflows (a corrupt stored user): selection fails for the batch, saying
    which version; the live version answers alone."""
    from learners import make_user_model

    e = engine_with(model, "exp3")
    state, log = SelectionState(), Log()
    huge = make_user_model("river", model.output_dim, prior_mean=np.full(model.output_dim + 1, 1e308))
    state.users[("ch1", "u1")] = huge.to_bytes()
    with caplog.at_level("WARNING", logger="eddy.engine"), np.errstate(over="ignore", invalid="ignore"):
        batch = run(e, state, [log.rec(query("r1"))])
    assert batch.counts["selection_failed"] == 1
    assert "version_scores" not in outputs(batch, "decisions")[0]
    assert [r.getMessage() for r in caplog.records] == [
        "model selection failed for a batch; the live version answers alone: version ch1 scored a candidate NaN or"
        " infinite"]


def test_feedback_on_a_decision_of_a_challenger_no_longer_served_still_teaches_its_users(model):
    """A worker restarted with another challenger joins feedback for a decision the old one scored: the old
    challenger's model of the user learns (a cache for its version is made with the embeddings' width)."""
    state, log = SelectionState(), Log()
    run(engine_with(model, "shadow"), state, [log.rec(query("r1"))])
    e = Engine(model, make_policy("epsilon_greedy:epsilon=0.2"), learner="river", join_window_s=60.0, seed=7,
               clock=lambda: T0)
    e.serve_selection(Selection([challenger(model, "ch2", 2)], mode="shadow"))
    batch = run(e, state, [log.rec(feedback("r1", "i2", reward=3.0))])
    assert batch.counts["selection_learned"] == 1
    assert load_user_model(state.users[("ch1", "u1")]).n_obs == 1 and ("ch2", "u1") not in state.users


class _SelectionKeysDown(SelectionState):
    """The store node holding some partitions' selection state is down (a partial outage)."""

    down: frozenset[int] = frozenset()

    def load_selection(self, partition):
        if partition in self.down:
            raise ConnectionError(f"the node of partition {partition} is down")
        return super().load_selection(partition)


def test_a_partitions_selection_state_that_cannot_be_read_fails_the_batch_even_with_the_users_cached(model):
    """The feedback lands on another partition than its query did (the topic was repartitioned): the users
    are cached, the partition's selection state is not, and its read fails. That is an outage of the
    batch, not a feedback the selector could not learn."""
    e = engine_with(model, "shadow")
    state, log = _SelectionKeysDown(), Log()
    run(e, state, [log.rec(query("r1"), partition=1)])
    state.down = frozenset({0})
    with pytest.raises(ConnectionError):
        e.process([log.rec(feedback("r1", "i2", reward=4.0), partition=0)], state)
