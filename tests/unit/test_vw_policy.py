"""The VW adapter: it learns, round-trips, versions its model; plus the VW 0.7.0 API facts we rely on."""

import json
import pickle

import numpy as np
import pytest
import vowpal_wabbit_next as vw

from bandits import BanditError, Candidates, VWExplorePolicy

pytestmark = pytest.mark.unit

N_ACTIONS = 4
BEST = 2
RNG0 = np.random.default_rng(0)  # VW's pmf does not depend on it


def random_candidates(rng, n=N_ACTIONS, d=3):
    return Candidates(
        scores=rng.normal(size=n),
        embeddings=rng.normal(size=(n, d)),
        action_ids=tuple(f"item-{k}" for k in range(n)),
    )


def run_online(policy, rounds, seed=0):
    """Decide, observe (only item-2 ever pays), learn with the logged propensity."""
    rng = np.random.default_rng(seed)
    for t in range(rounds):
        c = random_candidates(rng)
        d = policy.decide(c, np.random.default_rng(seed * 100_000 + t))
        policy.learn(c, d.chosen, reward=1.0 if d.chosen == BEST else 0.0, propensity=d.propensity)
    return policy


@pytest.mark.parametrize(
    "params",
    [
        dict(exploration="squarecb"),
        dict(exploration="epsilon", epsilon=0.1),
        dict(exploration="cover", cover=3, epsilon=0.05),
        dict(exploration="squarecb", interactions="ai"),
    ],
    ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()),
)
def test_learns_the_action_that_pays(params):
    policy = run_online(VWExplorePolicy(**params), rounds=300)
    pmf = policy.distribution(random_candidates(np.random.default_rng(999)), np.random.default_rng(0))
    assert pmf.argmax() == BEST
    assert pmf[BEST] > 0.7, pmf
    assert policy.n_learned == 300


def context_candidates(context, n=N_ACTIONS):
    """Candidate k's embedding is one-hot at (k, context), as f(x, item) makes it depend on both."""
    emb = np.zeros((n, 2 * n))
    emb[np.arange(n), 2 * np.arange(n) + context] = 1.0
    return Candidates(scores=np.zeros(n), embeddings=emb, action_ids=tuple(f"item-{k}" for k in range(n)))


PAYS_IN_CONTEXT = {0: 0, 1: 3}


def feedback(policy, contexts, seed):
    """Decide and learn once per context in ``contexts``: only the arm PAYS_IN_CONTEXT names pays."""
    for t, context in enumerate(contexts):
        c = context_candidates(context)
        d = policy.decide(c, np.random.default_rng(seed + t))
        policy.learn(c, d.chosen, reward=float(d.chosen == PAYS_IN_CONTEXT[context]), propensity=d.propensity)


@pytest.mark.parametrize(
    "params",
    [
        dict(exploration="squarecb"),
        dict(exploration="epsilon", epsilon=0.1),
        dict(exploration="cover", cover=3, epsilon=0.05),
    ],
    ids=lambda p: p["exploration"],
)
def test_feedback_raises_the_paying_arms_probability_in_its_context(params):
    policy = VWExplorePolicy(**params)
    pmf = {c: policy.distribution(context_candidates(c), RNG0) for c in (0, 1)}
    np.testing.assert_allclose(pmf[0], 1 / N_ACTIONS, atol=1e-6)  # untrained: uniform
    feedback(policy, [0] * 20, seed=0)
    raised = policy.distribution(context_candidates(0), RNG0)
    assert raised[PAYS_IN_CONTEXT[0]] > 0.5, raised  # from 0.25
    # now both contexts: each has its own paying arm, which the item id alone cannot tell apart
    feedback(policy, [0, 1] * 100, seed=1000)
    for context, best in PAYS_IN_CONTEXT.items():
        pmf = policy.distribution(context_candidates(context), RNG0)
        assert pmf.argmax() == best, (context, pmf)
        if params["exploration"] == "squarecb":
            # squarecb gives a non-greedy arm 1 / (K + gamma * gap), gamma = gamma_scale * sqrt(t)
            # ~ 10 * sqrt(220): even a learned gap of 0.2 leaves it below 0.04, so best > 0.88
            assert pmf[best] > 0.88, pmf
        else:
            # greedy with a uniform floor: the best arm gets exactly 1 - epsilon + epsilon / K
            epsilon = params["epsilon"]
            assert pmf[best] == pytest.approx(1 - epsilon + epsilon / N_ACTIONS, abs=1e-6), pmf


def test_untrained_pmf_is_uniform_and_in_candidate_order():
    policy = VWExplorePolicy()
    pmf = policy.distribution(random_candidates(np.random.default_rng(0)), np.random.default_rng(0))
    np.testing.assert_allclose(pmf, 1 / N_ACTIONS, atol=1e-6)


def test_pmf_follows_candidate_order_not_vw_order():
    policy = run_online(VWExplorePolicy(exploration="epsilon", epsilon=0.2), rounds=200)
    c = random_candidates(np.random.default_rng(5))
    perm = np.array([3, 0, 2, 1])
    shuffled = Candidates(scores=c.scores[perm], embeddings=c.embeddings[perm], action_ids=tuple(np.array(c.action_ids)[perm]))
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(policy.distribution(shuffled, rng), policy.distribution(c, rng)[perm], atol=1e-6)


def test_serialise_round_trip_same_pmf_and_same_future():
    policy = run_online(VWExplorePolicy(interactions="ai"), rounds=150)
    blob = policy.to_bytes()
    clone = VWExplorePolicy.from_bytes(blob)
    assert clone.version == policy.version
    assert clone.params() == policy.params()
    c = random_candidates(np.random.default_rng(42))
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(clone.distribution(c, rng), policy.distribution(c, rng))
    # learning continues identically after a reload (VW saves its online state)
    run_online(policy, rounds=50, seed=1)
    run_online(clone, rounds=50, seed=1)
    np.testing.assert_array_equal(clone.distribution(c, rng), policy.distribution(c, rng))
    pickled = pickle.loads(pickle.dumps(policy))
    np.testing.assert_array_equal(pickled.distribution(c, rng), policy.distribution(c, rng))


def test_raw_vw_model_loads_in_plain_workspace():
    policy = run_online(VWExplorePolicy(), rounds=50)
    workspace = vw.Workspace(["--quiet"], model_data=policy.model_bytes())  # options come from the model
    parser = vw.TextFormatParser(workspace)
    c = random_candidates(np.random.default_rng(3))
    scored = workspace.predict_one([parser.parse_line(line) for line in VWExplorePolicy.to_vw_lines(c)])
    pmf = np.zeros(c.n)
    for index, p in scored:
        pmf[index] = p
    np.testing.assert_allclose(pmf / pmf.sum(), policy.distribution(c, np.random.default_rng(0)))


def test_version_counts_learned_examples():
    policy = VWExplorePolicy(exploration="epsilon", epsilon=0.1)
    assert policy.version.endswith("&n_learned=0")
    run_online(policy, rounds=3)
    assert policy.version.endswith("&n_learned=3")
    assert policy.version.startswith("vw/1?")


def test_predict_does_not_change_the_model():
    policy = run_online(VWExplorePolicy(), rounds=30)
    c = random_candidates(np.random.default_rng(1))
    first = policy.distribution(c, np.random.default_rng(0))
    for _ in range(5):
        policy.decide(c, np.random.default_rng(1))
    np.testing.assert_array_equal(policy.distribution(c, np.random.default_rng(0)), first)


def test_text_lines_and_cost_convention():
    c = Candidates(scores=[0.5, 1e-7], embeddings=[[1.0, -2.5], [0.0, 3.0]], action_ids=("a|b:c d", ""))
    lines = VWExplorePolicy.to_vw_lines(c, label=(1, -1.0, 0.25))
    assert lines == ["|a e0:1 e1:-2.5 |i a_b_c_d |s score:0.5", "0:-1.0:0.25 |a e0:0 e1:3 |i _ |s score:1e-07"]
    workspace = vw.Workspace(["--cb_explore_adf", "--quiet"])
    example = vw.TextFormatParser(workspace).parse_line(lines[1])
    assert example.get_label().label == (0, -1.0, 0.25)  # reward 1 -> cost -1
    scores = {chr(fg.feat_group_index): list(fg.values) for fg in example}
    assert scores["s"] == [pytest.approx(1e-7)]


def test_works_without_embeddings_or_ids():
    policy = VWExplorePolicy(exploration="epsilon", epsilon=0.1)
    c = Candidates(scores=[0.0, 1.0, 2.0])
    for _ in range(100):
        policy.learn(c, chosen=2, reward=1.0, propensity=1 / 3)
        policy.learn(c, chosen=0, reward=0.0, propensity=1 / 3)
    assert policy.distribution(c, np.random.default_rng(0)).argmax() == 2


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(chosen=4, reward=1.0, propensity=0.5), "chosen"),
        (dict(chosen=-1, reward=1.0, propensity=0.5), "chosen"),
        (dict(chosen=True, reward=1.0, propensity=0.5), "chosen"),
        (dict(chosen=0, reward=float("nan"), propensity=0.5), "reward"),
        (dict(chosen=0, reward="1", propensity=0.5), "reward"),
        (dict(chosen=0, reward=1.0, propensity=0.0), "propensity"),
        (dict(chosen=0, reward=1.0, propensity=1.5), "propensity"),
    ],
)
def test_learn_rejects_bad_input(kwargs, needle):
    policy = VWExplorePolicy()
    with pytest.raises(BanditError, match=needle):
        policy.learn(random_candidates(np.random.default_rng(0)), **kwargs)
    assert policy.n_learned == 0


@pytest.mark.parametrize(
    "mutilate",
    [
        lambda blob: VWExplorePolicy().model_bytes(),  # raw VW model, no header
        lambda blob: blob[:9],  # truncated header
        lambda blob: blob[:7] + b"\x00\x00\x00\x02{]" + blob[11:],  # header not JSON
        lambda blob: blob[:-100],  # truncated model: VW itself would load this silently
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),  # one flipped bit
        lambda blob: "text",
    ],
)
def test_from_bytes_rejects_bad_data(mutilate):
    blob = run_online(VWExplorePolicy(), rounds=5).to_bytes()
    with pytest.raises(BanditError, match="data"):
        VWExplorePolicy.from_bytes(mutilate(blob))


DSJSON = (
    '{{{labels}"a": [2, 1], "c": {{"shared": {{"u": "1"}}, '
    '"_multi": [{{"i": {{"id": "x"}}}}, {{"i": {{"id": "y"}}}}]}}, "p": [0.6, 0.4]{tail}}}'
)
LABELS = '"_label_cost": -1.0, "_label_probability": 0.6, "_label_Action": 2, "_labelIndex": 1, '


def test_vw_dsjson_parser_reads_labels_only_before_c():
    """VW 0.7.0 fact the DSJSON export relies on: label keys after "c" are silently dropped."""
    workspace = vw.Workspace(["--cb_explore_adf", "--quiet"])
    parser = vw.DSJsonFormatParser(workspace)
    good = parser.parse_json(DSJSON.format(labels=LABELS, tail=""))
    assert [ex.get_label().shared for ex in good] == [True, False, False]
    # _labelIndex is the 0-based position in "_multi"; _label_Action is 1-based
    assert good[2].get_label().label == (2, -1.0, pytest.approx(0.6))  # VW stores float32
    late = parser.parse_json(DSJSON.format(labels="", tail=", " + LABELS.rstrip(", ")))
    assert all(ex.get_label().label is None for ex in late[1:])
    workspace.learn_one(good)
    assert len(workspace.predict_one(good)) == 2


def dsjson_line(candidates, chosen, reward, propensity):
    """The DSJSON form of one logged decision, with the features VWExplorePolicy uses (labels before "c")."""
    multi = [
        {"a": {f"e{j}": v for j, v in enumerate(row)}, "i": {item: 1}, "s": {"score": score}}
        for row, item, score in zip(candidates.embeddings.tolist(), candidates.action_ids, candidates.scores.tolist())
    ]
    record = {
        "_label_cost": -reward,
        "_label_probability": propensity,
        "_label_Action": chosen + 1,  # 1-based
        "_labelIndex": chosen,  # 0-based
        "a": list(range(1, candidates.n + 1)),
        "c": {"_multi": multi},
        "p": [propensity] * candidates.n,
    }
    return json.dumps(record)


def test_dsjson_replay_reproduces_the_online_model():
    online = VWExplorePolicy(exploration="epsilon", epsilon=0.1)
    replayed = VWExplorePolicy(exploration="epsilon", epsilon=0.1)
    parser = vw.DSJsonFormatParser(replayed._workspace)
    rng = np.random.default_rng(0)
    for _ in range(100):
        c = random_candidates(rng)
        chosen = int(rng.integers(c.n))
        reward = float(chosen == BEST)
        online.learn(c, chosen, reward, propensity=1 / c.n)
        examples = parser.parse_json(dsjson_line(c, chosen, reward, 1 / c.n))
        assert len(examples) == c.n + 1  # an empty shared example comes first
        replayed._workspace.learn_one(examples)
    # equal up to float32 rounding: text writes %.9g, JSON writes the full float64
    np.testing.assert_allclose(online._workspace.weights(), replayed._workspace.weights(), rtol=1e-5, atol=1e-7)


def reheader(blob, edit):
    """``blob`` with its JSON header changed by ``edit(header) -> (header, model bytes)``."""
    import struct
    import zlib

    size = struct.unpack(">I", blob[7:11])[0]
    header, model = edit(json.loads(blob[11 : 11 + size]), blob[11 + size :])
    header["size"], header["crc32"] = len(model), zlib.crc32(model)
    encoded = json.dumps(header).encode()
    return blob[:7] + struct.pack(">I", len(encoded)) + encoded + model


def test_from_bytes_names_a_bad_parameter_and_an_unloadable_model():
    blob = VWExplorePolicy().to_bytes()
    bogus = reheader(blob, lambda h, m: ({**h, "params": {**h["params"], "bogus": 1}}, m))
    with pytest.raises(BanditError, match=r"^data has a corrupt VWExplorePolicy header: .*bogus"):
        VWExplorePolicy.from_bytes(bogus)
    garbage = reheader(blob, lambda h, m: (h, b"not a VW model"))
    with pytest.raises(BanditError, match=r"^data holds no loadable VW model: "):
        VWExplorePolicy.from_bytes(garbage)


def test_distribution_sums_to_one_in_float64():
    # VW's pmf is float32; the adapter renormalises it in float64
    policy = run_online(VWExplorePolicy(), rounds=50)
    pmf = policy.distribution(random_candidates(np.random.default_rng(7)), RNG0)
    assert abs(pmf.sum() - 1.0) < 1e-12
