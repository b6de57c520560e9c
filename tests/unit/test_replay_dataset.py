"""Replay's joins and arrays: padding, masks, item indices, hashed contexts, the time split."""

import numpy as np
import pytest

from stream.events import Decision, Feedback, Item, Outcome
from stream.engine.joins import Source
from stream.replay.dataset import BanditLog, context_matrix, feature_bucket
from stream.replay.errors import ReplayError
from stream.replay.rounds import LoggedRound, join_outcomes, join_raw

pytestmark = pytest.mark.unit


def decision(rid, n, *, chosen=0, user="u1", ts=0.0, context=None, scores=None):
    pmf = tuple([1.0 / n] * n)
    return Decision(rid, user, ts, context or {}, tuple(Item(f"i{k}", {"g": "x"}) for k in range(n)),
                    tuple(scores or [float(k) for k in range(n)]), pmf, chosen, pmf[chosen],
                    "epsilon_greedy", "epsilon_greedy/1?epsilon=1.0", 11, "v1", 0)


def test_padding_mask_and_shapes():
    rounds = [LoggedRound(decision("a", 2, chosen=1, ts=2.0), 1.0), LoggedRound(decision("b", 4, ts=1.0), 0.0)]
    log = BanditLog.from_rounds(rounds)
    assert (log.n_rounds, log.n_actions) == (2, 4)
    assert log.mask.tolist() == [[True, True, False, False], [True, True, True, True]]
    assert log.pmf[0].tolist() == [0.5, 0.5, 0.0, 0.0]
    assert np.allclose(log.pmf.sum(axis=1), 1.0)
    assert log.scores[0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert log.item_ids[0].tolist() == ["i0", "i1", "", ""]
    assert log.action.dtype.kind == "i" and log.action.tolist() == [1, 0]
    assert log.pscore.tolist() == [0.5, 0.25]
    assert log.n_candidates.tolist() == [2, 4]
    assert log.seed.dtype == np.uint64


def test_padding_to_a_fixed_width_and_refusing_a_narrower_one():
    rounds = [LoggedRound(decision("a", 3), 1.0)]
    assert BanditLog.from_rounds(rounds, n_actions=5).pmf.shape == (1, 5)
    with pytest.raises(ReplayError, match="below the 3 candidates"):
        BanditLog.from_rounds(rounds, n_actions=2)


def test_empty_log_is_a_clear_error():
    with pytest.raises(ReplayError, match="no joined decisions"):
        BanditLog.from_rounds([])


def test_item_index_is_global_and_padding_is_minus_one():
    log = BanditLog.from_rounds([LoggedRound(decision("a", 2), 1.0), LoggedRound(decision("b", 3), 0.0)])
    vocab, index = log.item_index
    assert vocab.tolist() == ["i0", "i1", "i2"]
    assert index.tolist() == [[0, 1, -1], [0, 1, 2]]


def test_subset_keeps_the_column_count():
    log = BanditLog.from_rounds([LoggedRound(decision("a", 2), 1.0), LoggedRound(decision("b", 3), 0.0)])
    assert log.subset(np.array([True, False])).pmf.shape == (1, 3)


def test_context_matrix_hashes_numbers_strings_and_user():
    d = decision("a", 2, context={"hour": 5.0, "device": "tv"}, user="u7")
    x = context_matrix(BanditLog.from_rounds([LoggedRound(d, 1.0)]), 1024)
    assert x[0, feature_bucket("hour", 1024)] == 5.0
    assert x[0, feature_bucket("device=tv", 1024)] == 1.0
    assert x[0, feature_bucket("user_id=u7", 1024)] == 1.0
    assert x.sum() == 7.0
    assert context_matrix(BanditLog.from_rounds([LoggedRound(d, 1.0)]), 1024, include_user=False).sum() == 6.0
    with pytest.raises(ReplayError, match="context dim"):
        context_matrix(BanditLog.from_rounds([LoggedRound(d, 1.0)]), 0)


MIXED_CONTEXTS = [{"hour": 5.0, "device": "tv"}, {}, {"hour": "late", "device": "tv", "flag": True},
                  {"device": "phone", "hour": -2.5}, {"flag": False, "n": 3}, {"device": "tv"}]


@pytest.mark.parametrize("contexts", [
    MIXED_CONTEXTS,  # every context distinct
    # Repeated contexts (hashed once each), the same items in another order, and values equal as keys
    # but not as objects (1, 1.0, True): each row still gets its own entries, in its own order.
    MIXED_CONTEXTS * 3 + [{"device": "tv", "hour": 5.0}, {"n": 1}, {"n": 1.0}, {"n": True}, {"n": 1}],
], ids=["distinct", "repeated"])
def test_context_matrix_equals_the_row_by_row_definition_on_mixed_contexts(contexts):
    """A key with numbers in some rows and strings in others, booleans, empty contexts, repeated users."""
    rounds = [LoggedRound(decision(f"r{k}", 2, user=f"u{k % 2}", context=c), 1.0) for k, c in enumerate(contexts)]
    dim = 8  # small: collisions add up
    expected = np.zeros((len(contexts), dim))
    for k, c in enumerate(contexts):
        for name, value in c.items():
            if isinstance(value, str):
                expected[k, feature_bucket(f"{name}={value}", dim)] += 1.0
            else:
                expected[k, feature_bucket(name, dim)] += float(value)
        expected[k, feature_bucket(f"user_id=u{k % 2}", dim)] += 1.0
    log = BanditLog.from_rounds(rounds)
    np.testing.assert_array_equal(context_matrix(log, dim), expected)
    empty = BanditLog.from_rounds([LoggedRound(decision(f"r{k}", 2, context={}), 1.0) for k in range(3)])
    x = context_matrix(empty, dim, include_user=False)  # no feature at all: float zeros
    assert x.dtype == np.float64 and not x.any()


# ---------------------------------------------------------------------- joins


def test_outcome_join_drops_or_imputes_missing_and_counts_everything():
    a, b, c = decision("a", 2, chosen=1, ts=1.0), decision("b", 2, ts=2.0), decision("c", 2, ts=3.0)
    stray = decision("zzz", 2)
    outcomes = [Outcome(a, "i1", 1.0, 1.5), Outcome(a, "i1", 0.0, 1.6), Outcome(b, "i1", 1.0, 2.5),
                Outcome(stray, "i0", 1.0, 0.0)]
    rounds, stats = join_outcomes([a, b, c, a], outcomes, missing_reward=None)
    assert [r.decision.request_id for r in rounds] == ["a"]
    assert rounds[0].reward == 1.0 and rounds[0].feedback_ts == 1.5  # the first outcome wins
    assert (stats.decisions, stats.duplicate_decisions, stats.joined) == (3, 1, 1)
    assert (stats.missing, stats.dropped, stats.other_item) == (2, 2, 1)  # b's feedback is for another item
    assert (stats.duplicate_outcomes, stats.unmatched_outcomes) == (1, 1)
    assert "2 without outcome dropped" in stats.summary()
    rounds, stats = join_outcomes([a, b, c], outcomes, missing_reward=0.0)
    assert [(r.decision.request_id, r.reward, r.imputed) for r in rounds] == [
        ("a", 1.0, False), ("b", 0.0, True), ("c", 0.0, True)]
    assert stats.imputed == 2 and stats.dropped == 0


def test_raw_join_applies_the_workers_rules():
    a = decision("a", 2, chosen=1, ts=100.0, user="u1")
    b = decision("b", 2, chosen=0, ts=100.0, user="u1")
    c = decision("c", 2, chosen=0, ts=100.0, user="u1")
    t = "p.feedback"
    feedback = [
        (Source(t, 0, 5), Feedback("a", "u1", "i1", 0.0, 101.0)),  # duplicate: offset 5 comes after 3
        (Source(t, 0, 3), Feedback("a", "u1", "i1", 1.0, 100.5)),  # applied
        (Source(t, 0, 4), Feedback("b", "u1", "i0", 1.0, 100.0 + 601.0)),  # late (window 600)
        (Source(t, 0, 6), Feedback("c", "u2", "i0", 1.0, 101.0)),  # wrong user
        (Source(t, 0, 7), Feedback("c", "u1", "nope", 1.0, 101.0)),  # unknown item
        (Source(t, 0, 8), Feedback("ghost", "u1", "i0", 1.0, 101.0)),  # unknown request
    ]
    rounds, stats = join_raw([a, b, c], feedback, join_window_s=600.0, missing_reward=None)
    assert [(r.decision.request_id, r.reward) for r in rounds] == [("a", 1.0)]
    assert dict(stats.rejected_feedback) == {"duplicate_feedback": 1, "late_feedback": 1, "user_mismatch": 1,
                                             "unknown_item": 1, "unknown_request": 1}
    assert stats.dropped == 2 and stats.mode == "raw"
