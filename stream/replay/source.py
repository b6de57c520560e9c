"""Read a slice of the decision log, from Kafka or an exported DSJSON file, and join it.

Kafka: the ``decisions`` topic is read over the requested range with
:func:`stream.logread.read_slice_batches` (large fetches, ends at the high
watermark seen at the start, prints progress); then ``outcomes`` (or raw
``feedback``) from the first decision's record time to the last one's plus the
join window, so late-arriving outcomes of decisions near the end of the range
are found. Both are decoded in bulk into columns (:mod:`stream.replay.records`)
and joined by sorting and searching the request ids
(:func:`stream.replay.rounds.join_outcome_columns`). Records that do not
decode are counted and skipped, never fatal. A file is read the same way
(:func:`stream.replay.dsjson.read_dsjson_columns`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from stream.config import Settings
from stream.events import EventError, decode_feedback
from stream.engine.joins import Source
from stream.replay.dataset import BanditLog
from stream.replay.columns import without_gc
from stream.replay.errors import ReplayError
from stream.replay.records import decision_columns, outcome_columns
from stream.replay.rounds import Joined, JoinStats, join_outcome_columns, join_raw_columns
from stream.replay.slicing import SliceRequest

__all__ = ["LoadedLog", "load_rounds"]


@dataclass
class LoadedLog:
    """The joined log (time order), what the join did, and where it came from (offsets included)."""

    log: BanditLog | None
    stats: JoinStats
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def rounds(self) -> Sequence:
        """The rounds as LoggedRound (built on access: for export and the targets that need whole records)."""
        return self.log.rounds if self.log is not None else ()


def _read(settings: Settings, name: str, sl, *, progress: bool) -> Iterator:
    from confluent_kafka import KafkaException

    from stream.logread import read_slice_batches

    topic = settings.topic(name)
    try:
        yield from read_slice_batches(settings, topic, sl, progress=progress)
    except ValueError as exc:  # read_slice: topic does not exist
        raise ReplayError(f"{exc} (wrong --topic-prefix? nothing produced yet?)") from None
    except TimeoutError as exc:
        raise ReplayError(str(exc)) from None
    except KafkaException as exc:
        raise ReplayError(f"reading {topic} from {settings.bootstrap}: {exc.args[0]}") from None


@without_gc  # each consume call makes up to 20,000 messages: see without_gc
def _from_kafka(settings: Settings, req: SliceRequest, *, progress: bool) -> LoadedLog:
    from stream.logread import Slice

    undecodable: Counter = Counter()
    values: list[bytes | None] = []
    offsets: dict[int, list[int]] = {}
    first_ts, last_ts = math.inf, -math.inf
    sl = Slice(since=req.since, until=req.until, start_offsets=req.start_offsets, end_offsets=req.end_offsets)
    for batch in _read(settings, "decisions", sl, progress=progress):
        values += batch.values
        first_ts, last_ts = min(first_ts, min(batch.timestamps)), max(last_ts, max(batch.timestamps))
        parts, offs = np.asarray(batch.partitions), np.asarray(batch.offsets)
        for p in np.unique(parts).tolist():
            span = offs[parts == p]
            lo, hi = offsets.get(p, (int(span.min()), int(span.max())))
            offsets[p] = [min(lo, int(span.min())), max(hi, int(span.max()))]
    cols, _ = decision_columns(values, undecodable)
    provenance: dict[str, Any] = {
        "source": "kafka",
        "bootstrap": settings.bootstrap,
        "decisions_topic": settings.topic("decisions"),
        "decision_offsets": {p: {"from": lo, "to": hi + 1} for p, (lo, hi) in sorted(offsets.items())},
    }
    if cols.n == 0:
        return LoadedLog(None, JoinStats(mode=req.join, undecodable=undecodable), provenance)
    until = last_ts + settings.join_window_s + 5.0
    other = Slice(since=first_ts - 1.0, until=None if until >= time.time() else until)
    if req.join == "outcomes":
        outcome_values: list[bytes | None] = []
        for batch in _read(settings, "outcomes", other, progress=progress):
            outcome_values += batch.values
        outcomes, _ = outcome_columns(outcome_values, undecodable)
        joined, stats = join_outcome_columns(cols, outcomes, missing_reward=req.missing_reward)
        provenance["outcomes_read"] = outcomes.n
    else:
        feedback = []
        topic = settings.topic("feedback")
        for batch in _read(settings, "feedback", other, progress=progress):
            for partition, offset, value in zip(batch.partitions, batch.offsets, batch.values):
                try:
                    feedback.append((Source(topic, partition, offset), decode_feedback(value)))
                except EventError as exc:
                    undecodable[f"feedback.{exc.reason}"] += 1
        joined, stats = join_raw_columns(cols, feedback, join_window_s=settings.join_window_s,
                                         missing_reward=req.missing_reward)
        provenance["feedback_read"] = len(feedback)
        provenance["join_window_s"] = settings.join_window_s
    stats.undecodable = undecodable
    return LoadedLog(_log(cols, joined), stats, provenance)


def _log(cols, joined: Joined) -> BanditLog | None:
    if joined.rows.size == 0:
        return None
    return BanditLog.from_columns(cols, joined.rows, reward=joined.reward, feedback_ts=joined.feedback_ts,
                                  imputed=joined.imputed)


def _from_file(req: SliceRequest) -> LoadedLog:
    from stream.replay.dsjson import read_dsjson_columns

    file = read_dsjson_columns(req.source)
    ts = file.decisions.ts
    inside = np.ones(ts.shape, dtype=bool)
    if req.since is not None:
        inside &= ts >= req.since
    if req.until is not None:
        inside &= ts < req.until
    rows = file.decisions.time_order(np.flatnonzero(inside))
    imputed = int(file.imputed[rows].sum())
    stats = JoinStats(mode="file", decisions=int(rows.size), joined=int(rows.size) - imputed, imputed=imputed)
    log = BanditLog.from_columns(file.decisions, rows, reward=file.reward[rows], feedback_ts=file.feedback_ts[rows],
                                 imputed=file.imputed[rows]) if rows.size else None
    return LoadedLog(log, stats, {"source": "file", "path": req.source, "outside_time_range": int((~inside).sum())})


def load_rounds(settings: Settings, req: SliceRequest, *, progress: bool = True) -> LoadedLog:
    """The joined log of the requested slice; ReplayError when it holds no round."""
    loaded = _from_file(req) if req.from_file else _from_kafka(settings, req, progress=progress)
    if loaded.log is None:
        where = req.source if req.from_file else settings.topic("decisions")
        detail = loaded.stats.summary() if loaded.stats.decisions else "no decisions in the range"
        raise ReplayError(f"no joined decisions to use in {where} ({detail})")
    return loaded
