"""Read a slice of the decision log, from Kafka or an exported DSJSON file, and join it.

Kafka: the ``decisions`` topic is read over the requested range with
:func:`stream.logread.read_slice` (batched, ends at the high watermark seen
at the start, prints progress); then ``outcomes`` (or raw ``feedback``) from
the first decision's record time to the last one's plus the join window, so
late-arriving outcomes of decisions near the end of the range are found.
Records that do not decode are counted and skipped, never fatal.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from stream.config import Settings
from stream.events import EventError, decode_decision, decode_feedback, decode_outcome
from stream.engine.joins import Source
from stream.replay.errors import ReplayError
from stream.replay.rounds import JoinStats, LoggedRound, join_outcomes, join_raw
from stream.replay.slicing import SliceRequest

__all__ = ["LoadedLog", "load_rounds"]


@dataclass
class LoadedLog:
    """Joined rounds (time order), what the join did, and where they came from (offsets included)."""

    rounds: list[LoggedRound]
    stats: JoinStats
    provenance: dict[str, Any] = field(default_factory=dict)


def _read(settings: Settings, name: str, sl, *, progress: bool):
    from confluent_kafka import KafkaException

    from stream.logread import read_slice

    topic = settings.topic(name)
    try:
        yield from read_slice(settings, topic, sl, progress=progress)
    except ValueError as exc:  # read_slice: topic does not exist
        raise ReplayError(f"{exc} (wrong --topic-prefix? nothing produced yet?)") from None
    except TimeoutError as exc:
        raise ReplayError(str(exc)) from None
    except KafkaException as exc:
        raise ReplayError(f"reading {topic} from {settings.bootstrap}: {exc.args[0]}") from None


def _from_kafka(settings: Settings, req: SliceRequest, *, progress: bool) -> LoadedLog:
    from stream.logread import Slice

    undecodable: Counter = Counter()
    decisions = []
    offsets: dict[int, list[int]] = {}
    first_ts, last_ts = math.inf, -math.inf
    sl = Slice(since=req.since, until=req.until, start_offsets=req.start_offsets, end_offsets=req.end_offsets)
    for partition, offset, ts, value in _read(settings, "decisions", sl, progress=progress):
        span = offsets.setdefault(partition, [offset, offset])
        span[0], span[1] = min(span[0], offset), max(span[1], offset)
        first_ts, last_ts = min(first_ts, ts), max(last_ts, ts)
        try:
            decisions.append(decode_decision(value))
        except EventError as exc:
            undecodable[f"decisions.{exc.reason}"] += 1
    provenance: dict[str, Any] = {
        "source": "kafka",
        "bootstrap": settings.bootstrap,
        "decisions_topic": settings.topic("decisions"),
        "decision_offsets": {p: {"from": lo, "to": hi + 1} for p, (lo, hi) in sorted(offsets.items())},
    }
    if not decisions:
        stats = JoinStats(mode=req.join, undecodable=undecodable)
        return LoadedLog([], stats, provenance)
    until = last_ts + settings.join_window_s + 5.0
    other = Slice(since=first_ts - 1.0, until=None if until >= time.time() else until)
    if req.join == "outcomes":
        outcomes = []
        for _, _, _, value in _read(settings, "outcomes", other, progress=progress):
            try:
                outcomes.append(decode_outcome(value))
            except EventError as exc:
                undecodable[f"outcomes.{exc.reason}"] += 1
        rounds, stats = join_outcomes(decisions, outcomes, missing_reward=req.missing_reward)
        provenance["outcomes_read"] = len(outcomes)
    else:
        feedback = []
        topic = settings.topic("feedback")
        for partition, offset, _, value in _read(settings, "feedback", other, progress=progress):
            try:
                feedback.append((Source(topic, partition, offset), decode_feedback(value)))
            except EventError as exc:
                undecodable[f"feedback.{exc.reason}"] += 1
        rounds, stats = join_raw(decisions, feedback, join_window_s=settings.join_window_s,
                                 missing_reward=req.missing_reward)
        provenance["feedback_read"] = len(feedback)
        provenance["join_window_s"] = settings.join_window_s
    stats.undecodable = undecodable
    return LoadedLog(rounds, stats, provenance)


def _from_file(req: SliceRequest) -> LoadedLog:
    from stream.replay.dsjson import iter_dsjson

    rounds = []
    outside = 0
    for r in iter_dsjson(req.source):
        ts = r.decision.ts
        if (req.since is not None and ts < req.since) or (req.until is not None and ts >= req.until):
            outside += 1
            continue
        rounds.append(r)
    rounds.sort(key=lambda r: (r.decision.ts, r.decision.request_id))
    imputed = sum(r.imputed for r in rounds)
    stats = JoinStats(mode="file", decisions=len(rounds), joined=len(rounds) - imputed, imputed=imputed)
    return LoadedLog(rounds, stats, {"source": "file", "path": req.source, "outside_time_range": outside})


def load_rounds(settings: Settings, req: SliceRequest, *, progress: bool = True) -> LoadedLog:
    """The joined rounds of the requested slice; ReplayError when it holds none."""
    loaded = _from_file(req) if req.from_file else _from_kafka(settings, req, progress=progress)
    if not loaded.rounds:
        where = req.source if req.from_file else settings.topic("decisions")
        detail = loaded.stats.summary() if loaded.stats.decisions else "no decisions in the range"
        raise ReplayError(f"no joined decisions to use in {where} ({detail})")
    return loaded
