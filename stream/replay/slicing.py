"""Command-line options shared by ``eddy export`` and ``eddy replay``: which part of the log to read.

Light on purpose (argparse only): the verbs' ``add_arguments`` import it
when ``eddy --help`` builds the parser.

* ``--source kafka`` (default) reads the deployment's ``decisions`` topic, plus
  ``outcomes`` (``--join outcomes``, default) or raw ``feedback`` (``--join raw``);
  ``--source FILE`` reads a DSJSON file written by ``eddy export``.
* Time range (epoch seconds, Kafka record time): ``--since-minutes M`` (the
  last M minutes) or ``--since T``, and ``--until T``; none = the whole topic.
* Offsets of the decisions topic: ``--from-offsets 0:120,1:98`` (inclusive
  start) and ``--to-offsets 0:500,1:470`` (exclusive end); partitions not
  named keep their start / end. Outcomes or feedback are read from the first
  decision's time to the last one's plus the join window.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

from stream.argtypes import finite_float
from stream.config import ConfigError

__all__ = ["add_slice_arguments", "parse_offsets", "SliceRequest", "slice_request"]


def add_slice_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("log slice (default: the whole decisions topic)")
    g.add_argument("--source", default="kafka", metavar="kafka|FILE",
                   help="kafka (default), or the path of a cb_explore_adf DSJSON file: from eddy export, or "
                        "any producer that writes _label_cost, _label_probability, _label_Action or "
                        "_labelIndex, a, p and c._multi (docs/replay.md, docs/schemas/formats/dsjson.json)")
    g.add_argument("--since-minutes", type=float, default=None, metavar="M", help="only the last M minutes")
    g.add_argument("--since", type=finite_float, default=None, metavar="EPOCH_S", help="from this time (epoch seconds)")
    g.add_argument("--until", type=finite_float, default=None, metavar="EPOCH_S", help="up to this time (epoch seconds)")
    g.add_argument("--from-offsets", default=None, metavar="P:O,...",
                   help="decisions-topic offsets to start at (inclusive), e.g. 0:120,1:98")
    g.add_argument("--to-offsets", default=None, metavar="P:O,...",
                   help="decisions-topic offsets to stop before (exclusive), e.g. 0:500,1:470")
    g.add_argument("--join", choices=("outcomes", "raw"), default="outcomes",
                   help="outcomes: the worker's joined Outcome records (default); raw: decisions + feedback "
                        "joined here with the worker's rules (join window, duplicates)")
    g.add_argument("--missing-reward", type=float, default=None, metavar="R",
                   help="reward for decisions with no outcome (default: drop them and report how many)")


def parse_offsets(text: str | None, flag: str) -> dict[int, int] | None:
    """``"0:120,1:98"`` -> ``{0: 120, 1: 98}``; a ConfigError names the flag and the bad part.

    >>> parse_offsets("0:120, 1:98", "--from-offsets")
    {0: 120, 1: 98}
    >>> parse_offsets("0=1", "--to-offsets")
    Traceback (most recent call last):
    ...
    stream.config.ConfigError: --to-offsets: '0=1' is not partition:offset (e.g. 0:120,1:98)
    """
    if text is None:
        return None
    out: dict[int, int] = {}
    for part in filter(None, (s.strip() for s in text.split(","))):
        p, sep, o = part.partition(":")
        try:
            if not sep:
                raise ValueError
            partition, offset = int(p), int(o)
        except ValueError:
            raise ConfigError(f"{flag}: {part!r} is not partition:offset (e.g. 0:120,1:98)") from None
        if partition < 0 or offset < 0:
            raise ConfigError(f"{flag}: partition and offset must be >= 0, got {part!r}")
        if partition in out:
            raise ConfigError(f"{flag}: partition {partition} given twice")
        out[partition] = offset
    if not out:
        raise ConfigError(f"{flag}: no partition:offset pairs in {text!r}")
    return out


@dataclass(frozen=True)
class SliceRequest:
    """The checked slice options: where to read, which range, how to join."""

    source: str
    since: float | None
    until: float | None
    start_offsets: dict[int, int] | None
    end_offsets: dict[int, int] | None
    join: str
    missing_reward: float | None

    @property
    def from_file(self) -> bool:
        return self.source != "kafka"

    def to_dict(self) -> dict:
        return {
            "source": self.source, "since": self.since, "until": self.until,
            "from_offsets": self.start_offsets, "to_offsets": self.end_offsets,
            "join": self.join, "missing_reward": self.missing_reward,
        }


def slice_request(args: argparse.Namespace, *, now: float | None = None) -> SliceRequest:
    """Check the slice options of ``args`` together; ConfigError for contradictions."""
    since = args.since
    if args.since_minutes is not None:
        if since is not None:
            raise ConfigError("give --since-minutes or --since, not both")
        if not args.since_minutes > 0:
            raise ConfigError(f"--since-minutes must be > 0, got {args.since_minutes}")
        since = (time.time() if now is None else now) - 60.0 * args.since_minutes
    if since is not None and args.until is not None and args.until <= since:
        raise ConfigError(f"--until ({args.until}) must be later than the start of the range ({since})")
    start = parse_offsets(args.from_offsets, "--from-offsets")
    end = parse_offsets(args.to_offsets, "--to-offsets")
    if start and end:
        for p in set(start) & set(end):
            if end[p] < start[p]:
                raise ConfigError(f"--to-offsets {p}:{end[p]} is before --from-offsets {p}:{start[p]}")
    source = args.source or "kafka"
    if source != "kafka" and (start or end):
        raise ConfigError("--from-offsets/--to-offsets apply to Kafka; a file source takes --since/--until")
    if source != "kafka" and args.join != "outcomes":
        raise ConfigError("--join raw needs --source kafka: an exported file is already joined")
    mr = args.missing_reward
    if mr is not None and not math.isfinite(mr):
        raise ConfigError(f"--missing-reward must be a finite number, got {mr}")
    return SliceRequest(source, since, args.until, start, end, args.join, mr)
