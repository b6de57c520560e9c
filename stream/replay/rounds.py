"""The joined log record replay works on, and the two ways to join, with no I/O.

A *round* is one logged decision with the reward of its chosen action. Two
join modes give the same rounds the live loop saw:

* :func:`join_outcomes` (the default): the worker already joined each feedback
  to its decision and wrote an :class:`~stream.events.Outcome`; replay matches
  outcomes to the decisions of the slice by request id and slate position.
* :func:`join_raw`: decisions plus the raw feedback topic, each feedback judged
  by :func:`stream.engine.joins.classify` exactly as the worker does (join window,
  duplicates, unknown request, wrong user, unknown item). Feedback is taken in
  (partition, offset) order, the order the worker applies it in: a request's
  feedback all lives in its user's partition.

Either way, feedback for an item other than the chosen one is no reward *for
the logged action*, so it is counted (``other_item``) and the decision is
treated as having no outcome. A slate (``k > 1``) logs one decision per
position and feedback names its position: the join key is (request id,
position) (:func:`stream.engine.slates.slot_key`).
Decisions with no outcome get ``missing_reward`` when one is given, otherwise
they are dropped; :class:`JoinStats` says how many of each.

>>> from stream.events import Decision, Item, Outcome
>>> d = Decision("r1", "u1", 10.0, {}, (Item("a"), Item("b")), (0.1, 0.2), (0.5, 0.5), 1, 0.5,
...              "epsilon_greedy", "epsilon_greedy/1?epsilon=1.0", 7, "v1", 0)
>>> lost = Decision("r2", "u1", 11.0, {}, (Item("a"),), (0.0,), (1.0,), 0, 1.0, "greedy", "greedy/1", 8, "v1", 0)
>>> rounds, stats = join_outcomes([d, lost], [Outcome(d, "b", 1.0, 12.0)], missing_reward=None)
>>> [(r.decision.request_id, r.reward) for r in rounds], stats.dropped
([('r1', 1.0)], 1)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from stream.events import Decision, Feedback, Outcome
from stream.engine.joins import Source, classify
from stream.engine.slates import slot_key
from stream.replay.columns import DecisionColumns, object_array
from stream.replay.records import OutcomeColumns

__all__ = ["LoggedRound", "JoinStats", "Joined", "join_outcomes", "join_raw", "join_outcome_columns",
           "join_raw_columns"]


@dataclass(frozen=True, eq=False)
class LoggedRound:
    """One decision and the reward of its chosen action.

    Attributes:
        decision: the decision record as logged.
        reward: the observed reward, or the default when ``imputed``.
        feedback_ts: when the feedback was given (None when ``imputed``).
        imputed: True when no outcome was seen and ``--missing-reward`` filled it in.
        origin: where the round was read from, for error messages (``path:line`` of a DSJSON file).
    """

    decision: Decision
    reward: float
    feedback_ts: float | None = None
    imputed: bool = False
    origin: str | None = None

    def where(self) -> str:
        """``path:line`` when read from a file, else the decision's request id."""
        return self.origin or f"decision {self.decision.request_id!r}"


@dataclass
class JoinStats:
    """What the join did with every record it read (all counts)."""

    mode: str = "outcomes"
    decisions: int = 0
    duplicate_decisions: int = 0
    joined: int = 0
    missing: int = 0
    imputed: int = 0
    dropped: int = 0
    duplicate_outcomes: int = 0
    unmatched_outcomes: int = 0
    other_item: int = 0
    rejected_feedback: Counter = field(default_factory=Counter)
    undecodable: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "decisions": self.decisions,
            "duplicate_decisions": self.duplicate_decisions,
            "joined": self.joined,
            "missing": self.missing,
            "imputed": self.imputed,
            "dropped": self.dropped,
            "duplicate_outcomes": self.duplicate_outcomes,
            "unmatched_outcomes": self.unmatched_outcomes,
            "other_item": self.other_item,
            "rejected_feedback": dict(self.rejected_feedback),
            "undecodable": dict(self.undecodable),
        }

    def summary(self) -> str:
        """One line for the console."""
        parts = [f"{self.decisions} decisions", f"{self.joined} joined"]
        if self.imputed:
            parts.append(f"{self.imputed} without outcome given the default reward")
        if self.dropped:
            parts.append(f"{self.dropped} without outcome dropped (use --missing-reward to keep them)")
        if self.other_item:
            parts.append(f"{self.other_item} with feedback on another item than the chosen one")
        if self.rejected_feedback:
            parts.append("feedback rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(self.rejected_feedback.items())))
        if self.duplicate_decisions or self.duplicate_outcomes:
            parts.append(f"{self.duplicate_decisions} duplicate decisions, {self.duplicate_outcomes} duplicate outcomes ignored")
        if self.undecodable:
            parts.append("undecodable records skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(self.undecodable.items())))
        return "; ".join(parts)


@dataclass(eq=False)
class Joined:
    """The join's result: decision rows (of a :class:`~stream.replay.columns.DecisionColumns`) in time order,
    each with its reward, feedback time (NaN when imputed) and whether the reward was imputed."""

    rows: np.ndarray
    reward: np.ndarray
    feedback_ts: np.ndarray
    imputed: np.ndarray


def _finish(cols: DecisionColumns, unique: np.ndarray, reward: np.ndarray, feedback_ts: np.ndarray,
            has: np.ndarray, missing_reward: float | None, stats: JoinStats) -> Joined:
    """``unique`` rows with ``reward``/``feedback_ts`` where ``has``; the rest dropped or given ``missing_reward``."""
    stats.joined = int(has.sum())
    stats.missing = int(unique.size - stats.joined)
    if missing_reward is None:
        stats.dropped = stats.missing
        keep = has
    else:
        stats.imputed = stats.missing
        keep = np.ones(unique.size, dtype=bool)
        reward = np.where(has, reward, float(missing_reward))
        feedback_ts = np.where(has, feedback_ts, np.nan)
    rows = cols.time_order(unique[keep])
    at = np.searchsorted(unique, rows)  # unique is sorted: where each ordered row's values are
    return Joined(rows, reward[at], feedback_ts[at], ~has[at])


def _unique_decisions(cols: DecisionColumns, stats: JoinStats) -> tuple[np.ndarray, dict[str, int]]:
    """(rows, position of each request id in rows): the first decision of each request id (a re-processed
    query re-logs the same seeded decision)."""
    rows, stats.duplicate_decisions = cols.first_unique()
    stats.decisions = int(rows.size)
    keys = cols.join_keys()
    return rows, dict(zip([keys[j] for j in rows.tolist()], range(rows.size)))


def _match(position: dict[str, int], keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(found, position): for each of ``keys``, whether it names a decision and which (a dict lookup each,
    in C: faster than sorting strings)."""
    at = np.fromiter(map(position.get, keys, [-1] * len(keys)), dtype=np.intp, count=len(keys))
    return at >= 0, at


def join_outcome_columns(cols: DecisionColumns, outcomes: OutcomeColumns, *,
                         missing_reward: float | None) -> tuple[Joined, JoinStats]:
    """Decisions joined to the worker's Outcome records by request id (first outcome per request wins):
    dict lookups over the id columns and numpy over the rest, no per-record Python."""
    stats = JoinStats(mode="outcomes")
    unique, position = _unique_decisions(cols, stats)
    ids = outcomes.join_keys()
    first = np.sort(np.fromiter(dict(zip(reversed(ids), range(len(ids) - 1, -1, -1))).values(), dtype=np.intp))
    stats.duplicate_outcomes = outcomes.n - first.size
    found, at = _match(position, [ids[k] for k in first.tolist()])
    stats.unmatched_outcomes = int((~found).sum())
    first, at = first[found], at[found]
    rows = unique[at]
    chosen_code = cols.item_code[rows, cols.chosen[rows]]
    chosen_item = object_array(cols.vocab)[chosen_code]
    same = chosen_item == outcomes.item_id[first]
    stats.other_item = int((~same).sum())
    has = np.zeros(unique.size, dtype=bool)
    reward = np.zeros(unique.size)
    feedback_ts = np.full(unique.size, np.nan)
    has[at[same]] = True
    reward[at[same]] = outcomes.reward[first[same]]
    feedback_ts[at[same]] = outcomes.feedback_ts[first[same]]
    return _finish(cols, unique, reward, feedback_ts, has, missing_reward, stats), stats


def join_raw_columns(cols: DecisionColumns, feedback: Iterable[tuple[Source, Feedback]], *, join_window_s: float,
                     missing_reward: float | None) -> tuple[Joined, JoinStats]:
    """Decisions and raw feedback, each feedback judged by :func:`stream.engine.joins.classify` as the
    worker does, in (partition, offset) order (the decisions it names are decoded in full for it)."""
    stats = JoinStats(mode="raw")
    unique, position = _unique_decisions(cols, stats)
    feedback = sorted(feedback, key=lambda sf: (sf[0].topic, sf[0].partition, sf[0].offset))
    keys = [slot_key(fb.request_id, fb.position) for _, fb in feedback]
    found, at = _match(position, keys)
    markers: dict[str, dict] = {}
    decisions: dict[int, Decision] = {}
    has = np.zeros(unique.size, dtype=bool)
    reward = np.zeros(unique.size)
    feedback_ts = np.full(unique.size, np.nan)
    for (source, fb), key, hit, k in zip(feedback, keys, found.tolist(), at.tolist()):
        decision = None
        if hit:
            decision = decisions.get(k)
            if decision is None:
                decision = decisions[k] = cols.record(int(unique[k]))
        verdict = classify(fb, source, decision, markers.get(key), join_window_s=join_window_s)
        if verdict.action == "dead_letter":
            stats.rejected_feedback[verdict.reason] += 1
            continue
        if verdict.action == "redelivered":  # the same record twice in one read: nothing new
            continue
        markers[key] = {"source": source.to_list()}
        if verdict.item_index != decision.chosen_index:
            stats.other_item += 1
            continue
        has[k], reward[k], feedback_ts[k] = True, float(fb.reward), float(fb.ts)
    return _finish(cols, unique, reward, feedback_ts, has, missing_reward, stats), stats


def _rounds(decisions: list[Decision], joined: Joined) -> list[LoggedRound]:
    return [LoggedRound(decisions[j], float(r), None if f != f else float(f), bool(i))
            for j, r, f, i in zip(joined.rows.tolist(), joined.reward.tolist(), joined.feedback_ts.tolist(),
                                  joined.imputed.tolist())]


def join_outcomes(decisions: Iterable[Decision], outcomes: Iterable[Outcome], *,
                  missing_reward: float | None) -> tuple[list[LoggedRound], JoinStats]:
    """Rounds from Decision and Outcome objects: :func:`join_outcome_columns` on their columns."""
    decisions = list(decisions)
    joined, stats = join_outcome_columns(DecisionColumns.from_decisions(decisions), OutcomeColumns.of(list(outcomes)),
                                         missing_reward=missing_reward)
    return _rounds(decisions, joined), stats


def join_raw(decisions: Iterable[Decision], feedback: Iterable[tuple[Source, Feedback]], *, join_window_s: float,
             missing_reward: float | None) -> tuple[list[LoggedRound], JoinStats]:
    """Rounds from Decision objects and raw feedback: :func:`join_raw_columns` on their columns."""
    decisions = list(decisions)
    joined, stats = join_raw_columns(DecisionColumns.from_decisions(decisions), feedback,
                                     join_window_s=join_window_s, missing_reward=missing_reward)
    return _rounds(decisions, joined), stats
