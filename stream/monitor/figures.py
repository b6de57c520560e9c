"""What the monitor counts: each record's contribution, how contributions add up, and the ratios.

Pure: no faust, Kafka or clocks. A contribution is a :data:`Tally` (a fixed-length
list of numbers, so it is JSON in faust's changelogs) added to every *key* the
record belongs to. Keys are ``"<dimension>=<value>"`` strings:

* ``all`` -- every decision and outcome;
* ``policy=<name>`` -- the exploration policy (``epsilon_greedy``);
* ``feature_net=<version>`` -- the feature-net version that scored the decision;
* ``arm=<policy_version>|<feature_net_version>`` -- the model-selection arm: the
  policy with its parameters and the feature net, i.e. everything the decision
  logs about which model answered;
* ``dead_letter=<reason>`` -- dead-lettered records by reason (``late_feedback``,
  ``duplicate_feedback``, ``unknown_request``, ...).

>>> from stream import events
>>> d = events.Decision("r1", "u1", 100.0, {}, (events.Item("a"), events.Item("b")), (0.5, 0.25),
...                     (0.9, 0.1), 0, 0.9, "epsilon_greedy", "epsilon_greedy/1?epsilon=0.1", 7, "v3", 2)
>>> [k for k, _ in decision_tallies(d)]
['all', 'policy=epsilon_greedy', 'feature_net=v3', 'arm=epsilon_greedy/1?epsilon=0.1|v3']
>>> (key, t), *_ = outcome_tallies(events.Outcome(d, "b", 1.0, 104.0))
>>> figures(t)["reward_mean"], figures(t)["prediction_rmse"], figures(t)["feedback_delay_mean_s"]
(1.0, 0.75, 4.0)
"""

from __future__ import annotations

import math
from typing import Iterable

from stream import events

# Positions in a tally. All are sums except DELAY_MAX, which merges by max.
DECISIONS, OUTCOMES, REWARD, SQUARED_ERROR, ABS_ERROR, DELAY, DELAY_MAX, DEAD_LETTERS = range(8)
FIELDS = ("decisions", "outcomes", "reward_sum", "squared_error_sum", "abs_error_sum", "feedback_delay_sum_s",
          "feedback_delay_max_s", "dead_letters")
Tally = list  # list[float] of len(FIELDS)

# The dead-letter reasons that are feedback the join could not use (docs/events.md).
FEEDBACK_REASONS = ("late_feedback", "duplicate_feedback", "unknown_request")


def empty() -> Tally:
    return [0.0] * len(FIELDS)


def merge(a: Tally | None, b: Tally) -> Tally:
    """``a`` plus ``b``; a missing or empty ``a`` (a table's default) counts as zero."""
    if not a:
        return list(b)
    out = [x + y for x, y in zip(a, b)]
    out[DELAY_MAX] = max(a[DELAY_MAX], b[DELAY_MAX])
    return out


def decision_keys(d: events.Decision) -> list[str]:
    return ["all", f"policy={d.policy}", f"feature_net={d.feature_net_version}",
            f"arm={d.policy_version}|{d.feature_net_version}"]


def decision_tallies(d: events.Decision) -> list[tuple[str, Tally]]:
    t = empty()
    t[DECISIONS] = 1.0
    return [(k, t) for k in decision_keys(d)]


def outcome_tallies(o: events.Outcome) -> list[tuple[str, Tally]]:
    """The reward, the error of the score the decision gave the item the feedback is about, the delay."""
    d = o.decision
    ids = [c.id for c in d.candidates]
    score = d.scores[ids.index(o.item_id)] if o.item_id in ids else d.scores[d.chosen_index]
    error = o.reward - score
    delay = o.feedback_ts - d.ts
    t = empty()
    t[OUTCOMES], t[REWARD], t[SQUARED_ERROR], t[ABS_ERROR] = 1.0, o.reward, error * error, abs(error)
    t[DELAY], t[DELAY_MAX] = delay, delay
    if not all(math.isfinite(x) for x in t):  # a score beyond float range: count the outcome, not its error
        t[SQUARED_ERROR] = t[ABS_ERROR] = 0.0
    return [(k, t) for k in decision_keys(d)]


def dead_letter_tallies(reason: str) -> list[tuple[str, Tally]]:
    t = empty()
    t[DEAD_LETTERS] = 1.0
    return [(f"dead_letter={reason or 'unknown'}", t)]


def figures(t: Tally) -> dict[str, float]:
    """The ratios of one tally: reward mean, join rate, prediction RMSE and MAE, feedback delay.

    A ratio with a zero denominator is NaN (no data), not 0 (which would read as a value).
    """
    n_out, n_dec = t[OUTCOMES], t[DECISIONS]

    def per(x: float, n: float) -> float:
        return x / n if n else math.nan

    return {
        **dict(zip(FIELDS, t)),
        "reward_mean": per(t[REWARD], n_out),
        "join_rate": per(n_out, n_dec),
        "prediction_rmse": math.sqrt(per(t[SQUARED_ERROR], n_out)) if n_out else math.nan,
        "prediction_mae": per(t[ABS_ERROR], n_out),
        "feedback_delay_mean_s": per(t[DELAY], n_out),
    }


def partition_key(partition: int, key: str) -> str:
    """A table key: the figure's key in one source partition (see stream/monitor/app.py for why)."""
    return f"{partition}|{key}"


def across_partitions(items: Iterable[tuple[object, Tally]]) -> dict[object, Tally]:
    """Per-partition tallies summed per figure key; a windowed key ``(key, window)`` keeps its window.

    >>> across_partitions([("0|all", [1, 0, 0, 0, 0, 0, 2, 0]), ("3|all", [2, 0, 0, 0, 0, 0, 5, 0])])
    {'all': [3, 0, 0, 0, 0, 0, 5, 0]}
    >>> across_partitions([(("0|all", (0.0, 59.9)), [1] * 8), (("1|all", (0.0, 59.9)), [1] * 8)])
    {('all', (0.0, 59.9)): [2, 2, 2, 2, 2, 2, 1, 2]}
    """
    out: dict[object, Tally] = {}
    for key, tally in items:
        if isinstance(key, tuple):
            key = (key[0].partition("|")[2], tuple(key[1]))
        else:
            key = key.partition("|")[2]
        out[key] = merge(out.get(key), tally)
    return out


def latest_windows(items: Iterable[tuple[tuple[str, tuple[float, float]], Tally]]
                   ) -> tuple[tuple[float, float] | None, dict[str, Tally]]:
    """The window to show from a windowed table's ``((key, (start, end)), tally)`` items, and each key's tally in it.

    The newest window (the largest start) begins in the step of the newest record.
    Shown is the oldest window that holds that start: for a tumbling table the
    newest window itself; for a hopping table the full-size window that ends in
    the current step, so it covers the last ``size`` seconds. Keys with nothing in
    it are left out.

    >>> latest_windows([(("a", (0.0, 59.9)), [1]), (("a", (60.0, 119.9)), [2]), (("b", (0.0, 59.9)), [3])])
    ((60.0, 119.9), {'a': [2]})
    >>> hopping = [(("a", (-180.0, 119.9)), [1]), (("a", (60.0, 359.9)), [2]), (("b", (-240.0, 59.9)), [3])]
    >>> latest_windows(hopping)  # size 300, step 60: the newest record is in [60, 120)
    ((-180.0, 119.9), {'a': [1]})
    """
    items = list(items)
    if not items:
        return None, {}
    ref = max(start for (_, (start, _)), _ in items)
    shown = min((rng for (_, rng), _ in items if rng[0] <= ref <= rng[1]), key=lambda rng: rng[0])
    return tuple(shown), {key: tally for (key, rng), tally in items if tuple(rng) == tuple(shown)}
