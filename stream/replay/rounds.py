"""The joined log record replay works on, and the two ways to join, with no I/O.

A *round* is one logged decision with the reward of its chosen action. Two
join modes give the same rounds the live loop saw:

* :func:`join_outcomes` (the default): the worker already joined each feedback
  to its decision and wrote an :class:`~stream.events.Outcome`; replay matches
  outcomes to the decisions of the slice by request id.
* :func:`join_raw`: decisions plus the raw feedback topic, each feedback judged
  by :func:`stream.engine.joins.classify` exactly as the worker does (join window,
  duplicates, unknown request, wrong user, unknown item). Feedback is taken in
  (partition, offset) order, the order the worker applies it in: a request's
  feedback all lives in its user's partition.

Either way, feedback for an item other than the chosen one (possible when a
query asks for ``k > 1`` items) is no reward *for the logged action*, so it is
counted (``other_item``) and the decision is treated as having no outcome.
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

from stream.events import Decision, Feedback, Outcome
from stream.engine.joins import Source, classify

__all__ = ["LoggedRound", "JoinStats", "join_outcomes", "join_raw"]


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


def _unique(decisions: Iterable[Decision], stats: JoinStats) -> dict[str, Decision]:
    by_id: dict[str, Decision] = {}
    for d in decisions:
        if d.request_id in by_id:
            stats.duplicate_decisions += 1  # a re-processed query re-logs the same seeded decision
            continue
        by_id[d.request_id] = d
    stats.decisions = len(by_id)
    return by_id


def _finish(by_id: dict[str, Decision], rewards: dict[str, tuple[float, float]], missing_reward: float | None,
            stats: JoinStats) -> tuple[list[LoggedRound], JoinStats]:
    rounds = []
    for d in sorted(by_id.values(), key=lambda d: (d.ts, d.request_id)):
        got = rewards.get(d.request_id)
        if got is not None:
            rounds.append(LoggedRound(d, got[0], got[1]))
            stats.joined += 1
            continue
        stats.missing += 1
        if missing_reward is None:
            stats.dropped += 1
        else:
            rounds.append(LoggedRound(d, float(missing_reward), None, imputed=True))
            stats.imputed += 1
    return rounds, stats


def join_outcomes(decisions: Iterable[Decision], outcomes: Iterable[Outcome], *,
                  missing_reward: float | None) -> tuple[list[LoggedRound], JoinStats]:
    """Rounds from decisions and the worker's Outcome records (first outcome per request wins)."""
    stats = JoinStats(mode="outcomes")
    by_id = _unique(decisions, stats)
    rewards: dict[str, tuple[float, float]] = {}
    seen: set[str] = set()
    for o in outcomes:
        rid = o.decision.request_id
        if rid in seen:
            stats.duplicate_outcomes += 1
            continue
        seen.add(rid)
        d = by_id.get(rid)
        if d is None:
            stats.unmatched_outcomes += 1
            continue
        if o.item_id != d.chosen_item:
            stats.other_item += 1
            continue
        rewards[rid] = (float(o.reward), float(o.feedback_ts))
    return _finish(by_id, rewards, missing_reward, stats)


def join_raw(decisions: Iterable[Decision], feedback: Iterable[tuple[Source, Feedback]], *, join_window_s: float,
             missing_reward: float | None) -> tuple[list[LoggedRound], JoinStats]:
    """Rounds from decisions and raw feedback, judged by :func:`stream.engine.joins.classify` as the worker does."""
    stats = JoinStats(mode="raw")
    by_id = _unique(decisions, stats)
    markers: dict[str, dict] = {}
    rewards: dict[str, tuple[float, float]] = {}
    for source, fb in sorted(feedback, key=lambda sf: (sf[0].topic, sf[0].partition, sf[0].offset)):
        decision = by_id.get(fb.request_id)
        verdict = classify(fb, source, decision, markers.get(fb.request_id), join_window_s=join_window_s)
        if verdict.action == "dead_letter":
            stats.rejected_feedback[verdict.reason] += 1
            continue
        if verdict.action == "redelivered":  # the same record twice in one read: nothing new
            continue
        markers[fb.request_id] = {"source": source.to_list()}
        if verdict.item_index != decision.chosen_index:
            stats.other_item += 1
            continue
        rewards[fb.request_id] = (float(fb.reward), float(fb.ts))
    return _finish(by_id, rewards, missing_reward, stats)
