"""The DSJSON line replay reads, as msgspec Structs: its JSON Schema (docs/schemas/formats/dsjson.json) and its check.

What :func:`stream.replay.dsjson.from_dsjson` needs from a line written by
another tool (a Personalizer / decision-service log, a hand-made converter),
and what it takes when present. Required: ``_label_cost``,
``_label_probability``, ``_label_Action`` or ``_labelIndex``, ``a``, ``p`` and
``c._multi``. Everything else is optional; ``_eddy`` is Eddy's own block.
Unknown keys are ignored (VW ignores them too).

``python -m stream.replay.dsjson_schema --write docs/schemas/formats/dsjson.json``
regenerates the schema; a unit test fails when the file is stale.

>>> import msgspec
>>> line = {"_label_cost": -1, "_label_probability": 0.5, "_label_Action": 2, "a": [2, 1], "p": [0.5, 0.5],
...         "c": {"_multi": [{"i": {"id": "a"}}, {"i": {"id": "b"}}]}}
>>> msgspec.convert(line, DSJsonLine).c.multi[1].i.id
'b'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct, field

from stream.events import MAX_ID_LENGTH

__all__ = ["DSJsonLine", "DSJsonRead", "json_schema", "schema_text", "SCHEMA_PATH", "main"]

SCHEMA_PATH = Path("docs/schemas/formats/dsjson.json")

FeatureValue = str | float | int | bool
Features = dict[str, FeatureValue]
Position = Annotated[int, Meta(ge=0, description="slates: the 0-based position this decision filled (absent: 0)")]
ActionIndex = Annotated[int, Meta(ge=0)]
# The request id, held to the events' own rule (stream.events.RequestId: no control characters, at most
# MAX_ID_LENGTH characters) so that a file cannot bring in an id the decision log would refuse; empty is
# allowed here, and means "no id" (the reader names the row by its file and line instead).
EventId = Annotated[str, Meta(max_length=MAX_ID_LENGTH, pattern="^[^\\x00-\\x1f]*$",
                              description="the request id (absent or empty: file:line); no control characters")]
TAKEN = Meta(description="slates: 0-based indices into c._multi of the actions earlier positions took, in position "
                         "order (absent: none known; else one per earlier position, the chosen action not among them)")


class ActionId(Struct, kw_only=True, gc=False):
    """The item's id (``"i": {"id": ...}``); a number is read as its text."""

    id: str | int


class Action(Struct, kw_only=True):
    """One candidate: its id and, optionally, its features."""

    i: ActionId | None = None
    f: Features | None = None


class SharedContext(Struct, kw_only=True):
    """``c``: the shared context and the candidates, in candidate order."""

    multi: Annotated[list[Action], Meta(min_length=1)] = field(name="_multi")
    u: dict[str, str] | None = None  # {"user_id": ...}; absent: the user is "unknown"
    x: Features | None = None


class EddyBlock(Struct, kw_only=True):
    """``_eddy``: what Eddy writes for itself; every key optional."""

    format: int | None = None
    user_id: str | None = None
    ts: float | None = None
    scores: list[float] | None = None
    seed: int | None = None
    policy: str | None = None
    policy_version: str | None = None
    feature_net_version: str | None = None
    user_weights_version: int | None = None
    reward: float | None = None
    feedback_ts: float | None = None
    imputed: bool | None = None
    position: Position | None = None
    taken: Annotated[list[ActionIndex], TAKEN] | None = None


Probability = Annotated[float, Meta(gt=0, le=1)]


class DSJsonLine(Struct, kw_only=True):
    """One joined decision of a `vw --cb_explore_adf --dsjson` log, as `eddy replay --source FILE` reads it.

    The reward is `-_label_cost` (or `_eddy.reward`); the propensity is `_label_probability`; the chosen
    action is `_labelIndex` (0-based) or else `_label_Action` (1-based); `a` lists every action id
    1..len(_multi) once, chosen first, and `p[j]` is the logging probability of action `a[j]`.
    """

    label_cost: float = field(name="_label_cost")
    label_probability: Probability = field(name="_label_probability")
    label_action: Annotated[int, Meta(ge=1)] | None = field(name="_label_Action", default=None)
    label_index: Annotated[int, Meta(ge=0)] | None = field(name="_labelIndex", default=None)
    timestamp: str | None = field(name="Timestamp", default=None)
    version: str | None = field(name="Version", default=None)
    event_id: EventId | None = field(name="EventId", default=None)
    a: Annotated[list[Annotated[int, Meta(ge=1)]], Meta(min_length=1)]
    c: SharedContext
    p: Annotated[list[Annotated[float, Meta(ge=0, le=1)]], Meta(min_length=1)]
    eddy: EddyBlock | None = field(name="_eddy", default=None)


# ------------------------------------------------------------------ what replay reads
# The same line with only the keys replay's columns need (same names and checks): msgspec skips the rest
# unread, and the candidates' features are most of a line. Sequences are tuples and the Structs untracked
# (gc=False): a file of 10,000 lines is 140,000 containers, and the cyclic collector would walk every
# list of them again and again while they are decoded (tuples of numbers it drops at its first look).
# A unit test keeps the shared keys equal to DSJsonLine's. The full line is decoded again only for a
# round that is built (VW and feature-net targets, export).


class ActionRead(Struct, kw_only=True, gc=False):
    i: ActionId | None = None


class SharedContextRead(Struct, kw_only=True, gc=False):
    multi: Annotated[tuple[ActionRead, ...], Meta(min_length=1)] = field(name="_multi")
    u: dict[str, str] | None = None
    x: Features | None = None


class EddyRead(Struct, kw_only=True, gc=False):
    user_id: str | None = None
    ts: float | None = None
    scores: tuple[float, ...] | None = None
    seed: int | None = None
    reward: float | None = None
    feedback_ts: float | None = None
    imputed: bool | None = None
    position: Position | None = None
    taken: Annotated[tuple[ActionIndex, ...], TAKEN] | None = None


class DSJsonRead(Struct, kw_only=True, gc=False):
    """The keys of :class:`DSJsonLine` that replay's columns read."""

    label_cost: float = field(name="_label_cost")
    label_probability: Probability = field(name="_label_probability")
    label_action: Annotated[int, Meta(ge=1)] | None = field(name="_label_Action", default=None)
    label_index: Annotated[int, Meta(ge=0)] | None = field(name="_labelIndex", default=None)
    timestamp: str | None = field(name="Timestamp", default=None)
    event_id: EventId | None = field(name="EventId", default=None)
    a: Annotated[tuple[Annotated[int, Meta(ge=1)], ...], Meta(min_length=1)]
    c: SharedContextRead
    p: Annotated[tuple[Annotated[float, Meta(ge=0, le=1)], ...], Meta(min_length=1)]
    eddy: EddyRead | None = field(name="_eddy", default=None)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`DSJsonLine` (what docs/schemas/formats/dsjson.json holds)."""
    schema = msgspec.json.schema(DSJsonLine)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "eddy replay DSJSON line", **schema}


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m stream.replay.dsjson_schema",
                                     description="Write the JSON Schema of the DSJSON lines replay reads.")
    parser.add_argument("--write", metavar="PATH", default=str(SCHEMA_PATH), help=f"default {SCHEMA_PATH}")
    args = parser.parse_args(argv)
    path = Path(args.write)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text())
    print(path)
    return 0


if __name__ == "__main__":
    from stream.replay.dsjson_schema import main as _main

    raise SystemExit(_main())
