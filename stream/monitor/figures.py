"""What the monitor counts: each record's contribution, how contributions add up, and the ratios.

Pure: no faust, Kafka or clocks. A contribution is a :data:`Tally` (a fixed-length
list of numbers, so it is JSON in faust's changelogs) added under the record's
*grain*, the finest key the monitor keeps:

* ``("arm", policy, policy_version, feature_net_version)`` for a decision or an
  outcome: the model-selection arm (the policy with its parameters and the
  feature net: everything the decision logs about which model answered);
* ``("dead_letter", reason)`` for a dead-lettered record.

Tallies add up, so coarser figures are sums of grains, made when the tables are
read (:func:`rolled_up`): the tables hold one key per grain, not one per figure
(every table write is a changelog record). The figure keys are
``"<dimension>=<value>"`` strings: ``all``, ``policy=<name>``,
``feature_net=<version>``, ``arm=<policy_version>|<feature_net_version>``,
``dead_letter=<reason>`` (``late_feedback``, ``duplicate_feedback``,
``unknown_request``, ...).

>>> from stream import events
>>> d = events.Decision("r1", "u1", 100.0, {}, (events.Item("a"), events.Item("b")), (0.5, 0.25),
...                     (0.9, 0.1), 0, 0.9, "epsilon_greedy", "epsilon_greedy/1?epsilon=0.1", 7, "v3", 2)
>>> [(grain, t)] = decision_tallies(d)
>>> figure_keys(grain)
['all', 'policy=epsilon_greedy', 'feature_net=v3', 'arm=epsilon_greedy/1?epsilon=0.1|v3']
>>> [(grain, t)] = outcome_tallies(events.Outcome(d, "b", 1.0, 104.0))
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


Grain = tuple  # ("arm", policy, policy_version, feature_net) or ("dead_letter", reason)


def arm(d: events.Decision) -> Grain:
    return ("arm", d.policy, d.policy_version, d.feature_net_version)


def figure_keys(grain: Grain) -> list[str]:
    """The figures a grain counts in."""
    if grain[0] == "arm":
        _, policy, policy_version, feature_net = grain
        return ["all", f"policy={policy}", f"feature_net={feature_net}", f"arm={policy_version}|{feature_net}"]
    return [f"dead_letter={grain[1]}"]


def decision_tallies(d: events.Decision) -> list[tuple[Grain, Tally]]:
    t = empty()
    t[DECISIONS] = 1.0
    return [(arm(d), t)]


def outcome_tallies(o: events.Outcome) -> list[tuple[Grain, Tally]]:
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
    return [(arm(d), t)]


def dead_letter_tallies(reason: str) -> list[tuple[Grain, Tally]]:
    t = empty()
    t[DEAD_LETTERS] = 1.0
    return [(("dead_letter", reason or "unknown"), t)]


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


def table_key(partition: int, grain: Grain) -> tuple:
    """A table key: a grain in one source partition (see stream/monitor/app.py for why)."""
    return (partition, *grain)


def rolled_up(items: Iterable[tuple[tuple, Tally]]) -> dict[object, Tally]:
    """Tables' ``(table key, tally)`` items summed per figure key, over partitions and grains.

    A windowed table's key ``(table key, (start, end))`` gives ``(figure key, (start, end))``.

    >>> one = [1.0, 0, 0, 0, 0, 0, 2.0, 0]
    >>> got = rolled_up([((0, "arm", "eg", "eg/1", "v1"), one), ((3, "arm", "eg", "eg/1", "v2"), one)])
    >>> got["all"], got["feature_net=v1"]
    ([2.0, 0, 0, 0, 0, 0, 2.0, 0], [1.0, 0, 0, 0, 0, 0, 2.0, 0])
    >>> rolled_up([(((1, "dead_letter", "late_feedback"), (0.0, 59.9)), one)])
    {('dead_letter=late_feedback', (0.0, 59.9)): [1.0, 0, 0, 0, 0, 0, 2.0, 0]}
    """
    out: dict[object, Tally] = {}
    for key, tally in items:
        windowed = isinstance(key[0], tuple)
        grain = tuple(key[0][1:]) if windowed else tuple(key[1:])
        for figure_key in figure_keys(grain):
            k = (figure_key, tuple(key[1])) if windowed else figure_key
            out[k] = merge(out.get(k), tally)
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
