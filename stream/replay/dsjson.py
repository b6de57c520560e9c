"""Vowpal Wabbit DSJSON (decision-service JSON): one line per joined decision, and back.

Each line is what ``vw --cb_explore_adf --dsjson`` and vowpal-wabbit-next's
``DSJsonFormatParser`` train on, keys in this order::

    {"_label_cost": -reward, "_label_probability": propensity,
     "_label_Action": chosen + 1, "_labelIndex": chosen,
     "Timestamp": "...Z", "Version": "1", "EventId": request_id,
     "a": [chosen + 1, other action ids...],
     "c": {"u": {"user_id": ...}, "x": {context...},
           "_multi": [{"i": {"id": item}, "f": {item features...}}, ...]},
     "p": [probability of each id in "a"],
     "_eddy": {scores, seed, policy, versions, reward, feedback_ts, position, taken, ...}}

* The label keys come before ``"c"``: VW's streaming parser attaches a label to
  the example being built, and labels that arrive after ``"c"`` are silently
  dropped (the line still parses, and trains nothing).
* ``cost = -reward``: VW minimises cost, Eddy maximises reward.
* ``"a"`` and ``"p"`` follow the decision-service convention: ``a[0]`` is the
  chosen action (1-based index into ``_multi``), then the others in candidate
  order, and ``p[j]`` is the logging probability of action ``a[j]``; so
  ``p[0]`` is the propensity and ``pmf[a[j] - 1] = p[j]`` restores the pmf.
* Namespaces: ``u`` (user id), ``x`` (context; a string value ``"s"`` of key
  ``k`` is VW feature ``ks``, a number is a weighted feature), ``i`` (item id)
  and ``f`` (item features). Interactions worth asking VW for: ``ui``, ``xi``, ``xf``.
* ``_eddy`` holds what VW does not need but replay does (logged scores, seed,
  policy and model versions, the reward itself, and for slates the decision's
  ``position`` and the actions earlier positions ``taken``); VW ignores unknown keys.

>>> from stream.events import Decision, Item
>>> from stream.replay.rounds import LoggedRound
>>> d = Decision("r1", "u1", 0.0, {"device": "tv"}, (Item("a"), Item("b")), (0.1, 0.7), (0.25, 0.75), 1, 0.75,
...              "epsilon_greedy", "epsilon_greedy/1?epsilon=0.5", 7, "v1", 0)
>>> obj = to_dsjson(LoggedRound(d, 1.0, 1.5))
>>> list(obj)[:8]
['_label_cost', '_label_probability', '_label_Action', '_labelIndex', 'Timestamp', 'Version', 'EventId', 'a']
>>> obj["a"], obj["p"], obj["_label_cost"]
([2, 1], [0.75, 0.25], -1.0)
>>> back = from_dsjson(obj)
>>> back.decision == d, back.reward
(True, 1.0)
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterable, Iterator

import msgspec
import numpy as np

from stream.events import Decision, Item
from stream.replay.columns import DecisionColumns, without_gc
from stream.replay.dsjson_schema import DSJsonLine, DSJsonRead, EddyBlock, EddyRead
from stream.replay.errors import ReplayError
from stream.replay.rounds import LoggedRound

__all__ = ["to_dsjson", "dsjson_line", "from_dsjson", "write_dsjson", "read_dsjson", "read_dsjson_columns",
           "DSJsonColumns", "LABEL_KEYS", "unlabeled_line"]

LABEL_KEYS = ("_label_cost", "_label_probability", "_label_Action", "_labelIndex")
FORMAT_VERSION = 1
_DECODER = msgspec.json.Decoder(DSJsonLine)
_READ_DECODER = msgspec.json.Decoder(DSJsonRead)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _multi(decision: Decision) -> list[dict[str, Any]]:
    out = []
    for c in decision.candidates:
        action: dict[str, Any] = {"i": {"id": c.id}}
        if c.features:
            action["f"] = dict(c.features)
        out.append(action)
    return out


def to_dsjson(r: LoggedRound) -> dict[str, Any]:
    """The DSJSON object of one round, keys in the order VW needs (see the module docstring)."""
    d = r.decision
    chosen = d.chosen_index
    order = [chosen] + [k for k in range(len(d.candidates)) if k != chosen]
    obj: dict[str, Any] = {}
    obj["_label_cost"] = 0.0 - float(r.reward)  # never -0.0
    obj["_label_probability"] = float(d.propensity)
    obj["_label_Action"] = chosen + 1
    obj["_labelIndex"] = chosen
    obj["Timestamp"] = _iso(d.ts)
    obj["Version"] = "1"
    obj["EventId"] = d.request_id
    obj["a"] = [k + 1 for k in order]
    obj["c"] = {"u": {"user_id": d.user_id}, "x": dict(d.context or {}), "_multi": _multi(d)}  # context may be null
    obj["p"] = [float(d.pmf[k]) for k in order]
    obj["_eddy"] = {
        "format": FORMAT_VERSION,
        "user_id": d.user_id,
        "ts": d.ts,
        "scores": [float(s) for s in d.scores] if all(math.isfinite(s) for s in d.scores) else None,
        "seed": d.seed,
        "policy": d.policy,
        "policy_version": d.policy_version,
        "feature_net_version": d.feature_net_version,
        "user_weights_version": d.user_weights_version,
        "reward": float(r.reward),
        "feedback_ts": r.feedback_ts,
        "imputed": r.imputed,
    }
    if d.position:  # slates (absent otherwise, so a log without them exports as before)
        obj["_eddy"]["position"] = d.position
        if d.taken:
            obj["_eddy"]["taken"] = list(d.taken)
    return obj


def dsjson_line(r: LoggedRound) -> str:
    """One compact DSJSON line (no newline)."""
    return json.dumps(to_dsjson(r), separators=(",", ":"), allow_nan=False)


def unlabeled_line(r: LoggedRound) -> str:
    """The round's DSJSON without label keys: what a policy is asked to score."""
    obj = to_dsjson(r)
    for key in LABEL_KEYS:
        del obj[key]
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _ts(line: DSJsonLine, eddy: EddyBlock) -> float:
    if eddy.ts is not None:
        return float(eddy.ts)
    if line.timestamp is not None:
        try:
            return dt.datetime.fromisoformat(line.timestamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise ReplayError(f"Timestamp {line.timestamp!r} is not ISO 8601") from None
    return 0.0


_NO_EDDY = EddyBlock()


def from_dsjson(obj: dict[str, Any] | DSJsonLine, *, default_id: str = "dsjson",
                origin: str | None = None) -> LoggedRound:
    """Rebuild a round from a DSJSON object (Eddy's, or any cb_explore_adf DSJSON with a/p/labels).

    The keys a line needs and may have are :class:`~stream.replay.dsjson_schema.DSJsonLine`'s
    (docs/schemas/formats/dsjson.json). ``default_id`` is the request id when the line has no
    ``EventId``; ``origin`` (``path:line``) is kept on the round for error messages.
    """
    if isinstance(obj, DSJsonLine):
        line = obj
    else:
        if not isinstance(obj, dict):
            raise ReplayError("a DSJSON line must be a JSON object")
        try:
            line = msgspec.convert(obj, DSJsonLine)
        except msgspec.ValidationError as exc:
            raise ReplayError(str(exc)) from None
    eddy = line.eddy or _NO_EDDY
    multi = line.c.multi
    candidates = tuple(Item(str(m.i.id) if m.i is not None else f"action{k + 1}", m.f or {})
                       for k, m in enumerate(multi))
    n = len(candidates)
    if line.label_index is not None:
        chosen = line.label_index
    elif line.label_action is not None:
        chosen = line.label_action - 1
    else:
        raise ReplayError("missing key '_labelIndex' (0-based) or '_label_Action' (1-based): which action was chosen")
    if not 0 <= chosen < n:
        raise ReplayError(f"chosen action {chosen + 1} is outside the {n} actions")
    actions, probs = line.a, line.p
    if len(actions) != len(probs) or len(actions) != n or set(actions) != set(range(1, n + 1)):
        raise ReplayError(f"'a' must list the action ids 1..{n} once each, with one 'p' per id")
    pmf = [0.0] * n
    for a, p in zip(actions, probs):
        pmf[a - 1] = p
    scores = eddy.scores
    user = eddy.user_id or (line.c.u or {}).get("user_id") or "unknown"
    decision = Decision(
        request_id=line.event_id or default_id,
        user_id=user,
        ts=_ts(line, eddy),
        context=line.c.x or {},
        candidates=candidates,
        scores=tuple(scores) if scores is not None and len(scores) == n else (math.nan,) * n,
        pmf=tuple(pmf),
        chosen_index=chosen,
        propensity=line.label_probability,
        policy=eddy.policy or "unknown",
        policy_version=eddy.policy_version or "unknown",
        seed=eddy.seed or 0,
        feature_net_version=eddy.feature_net_version or "unknown",
        user_weights_version=eddy.user_weights_version or 0,
        position=eddy.position or 0,
        taken=tuple(eddy.taken or ()),
    )
    _check_slate(decision.position, decision.taken, chosen, n)
    reward = eddy.reward if eddy.reward is not None else -line.label_cost
    return LoggedRound(decision, float(reward), eddy.feedback_ts, imputed=bool(eddy.imputed), origin=origin)


def _check_slate(position: int, taken: tuple[int, ...], chosen: int, n: int) -> None:
    if position >= n:
        raise ReplayError(f"_eddy.position {position} with {n} actions")
    if taken and (len(taken) != position or chosen in taken or max(taken) >= n):
        raise ReplayError(f"_eddy.taken {list(taken)} at position {position}: one action per earlier position, "
                          f"each below {n}, the chosen one ({chosen}) not among them")


def write_dsjson(rounds: Iterable[LoggedRound], path: str | Path) -> int:
    """Write one line per round; returns the number of lines."""
    count = 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rounds:
            fh.write(dsjson_line(r))
            fh.write("\n")
            count += 1
    return count


def iter_dsjson(path: str | Path) -> Iterator[LoggedRound]:
    """Rounds from a DSJSON file; a bad line raises ReplayError naming the file and line.

    Lines are decoded straight into :class:`~stream.replay.dsjson_schema.DSJsonLine` by msgspec
    (typed and checked in one pass, no intermediate dicts).
    """
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ReplayError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    name = Path(path).name
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if raw.strip():
                yield _line_round(path, name, lineno, raw)


def read_dsjson(path: str | Path) -> list[LoggedRound]:
    """Every round of a DSJSON file, in file order."""
    return list(iter_dsjson(path))


# ------------------------------------------------------------------ columns, for replay


@dataclass(eq=False)
class DSJsonColumns:
    """A DSJSON file as columns (row ``j`` = the ``j``-th non-blank line): its decisions and their rewards."""

    decisions: DecisionColumns
    reward: np.ndarray
    feedback_ts: np.ndarray
    imputed: np.ndarray


class _Lines:
    """The non-blank lines of a file's bytes and their line numbers, split only when a row is asked for."""

    def __init__(self, path: str | Path, buf: bytes):
        self.path, self.buf = path, buf
        self.name = Path(path).name

    @cached_property
    def _nonblank(self) -> tuple[list[int], list[bytes]]:
        numbers, lines = [], []
        for lineno, raw in enumerate(self.buf.split(b"\n"), 1):
            if raw.strip():
                numbers.append(lineno)
                lines.append(raw)
        return numbers, lines

    def lineno(self, j: int) -> int:
        return self._nonblank[0][j]

    def origin(self, j: int) -> str:
        return f"{self.path}:{self.lineno(j)}"

    def round(self, j: int) -> LoggedRound:
        """Row ``j`` decoded in full, with the line's own error message."""
        numbers, lines = self._nonblank
        return _line_round(self.path, self.name, numbers[j], lines[j])

    def fail(self, j: int | None, why: str) -> ReplayError:
        """The error of row ``j`` (or of the first bad line when None), as the line-by-line reader words it."""
        numbers, lines = self._nonblank
        for k in ([j] if j is not None else range(len(lines))):
            try:
                _line_round(self.path, self.name, numbers[k], lines[k])
            except ReplayError as exc:
                return exc
        where = f"{self.path}:{numbers[j]}" if j is not None else str(self.path)
        return ReplayError(f"{where}: not a usable DSJSON decision: {why}")


def _line_round(path: str | Path, name: str, lineno: int, raw: bytes) -> LoggedRound:
    try:
        return from_dsjson(_DECODER.decode(raw), default_id=f"{name}:{lineno}", origin=f"{path}:{lineno}")
    except msgspec.ValidationError as exc:
        raise ReplayError(f"{path}:{lineno}: not a usable DSJSON decision: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ReplayError(f"{path}:{lineno}: not JSON ({exc})") from None
    except (ReplayError, TypeError, ValueError) as exc:
        raise ReplayError(f"{path}:{lineno}: not a usable DSJSON decision: {exc}") from None


_NO_EDDY_READ = EddyRead()


def _item_ids(multi: list) -> list[str]:
    return [str(m.i.id) if m.i is not None else f"action{k + 1}" for k, m in enumerate(multi)]


@without_gc
def read_dsjson_columns(path: str | Path) -> DSJsonColumns:
    """A DSJSON file straight into columns: one msgspec call for the whole file, then numpy.

    The same contract and the same error messages (file and line) as :func:`iter_dsjson`: a line that
    fails a check here is read again by it to say what is wrong.
    """
    try:
        with open(path, "rb") as fh:
            buf = fh.read()
    except OSError as exc:
        raise ReplayError(f"cannot read {str(path)!r}: {exc.strerror}") from None
    lines = _Lines(path, buf)
    try:
        rows = _READ_DECODER.decode_lines(buf)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise lines.fail(None, str(exc)) from None
    return _columns(rows, lines)


def _column(rows: list, name: str) -> list:
    return list(map(attrgetter(name), rows))


def _columns(rows: list[DSJsonRead], lines: _Lines) -> DSJsonColumns:
    # Every key of every line, one C-level pass per key; a key a line lacks (None) is filled in only
    # when some line lacks it.
    m = len(rows)
    if m == 0:
        empty = DecisionColumns.build(request_id=[], user_id=[], context=[], ts=[], item_ids=[], n_candidates=[],
                                      pmf=[], scores=[], chosen=[], propensity=[], seed=[], record=lines.round)
        return DSJsonColumns(empty, np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))
    shared, eddy = _column(rows, "c"), _column(rows, "eddy")
    if None in eddy:
        eddy = [e if e is not None else _NO_EDDY_READ for e in eddy]
    multis, contexts, users_u = _column(shared, "multi"), _column(shared, "x"), _column(shared, "u")
    a_lists, p_lists, propensity, cost, label_index, label_action, request_id = (
        _column(rows, name) for name in ("a", "p", "label_probability", "label_cost", "label_index",
                                         "label_action", "event_id"))
    ts, scores, users, seed, reward, feedback_ts, imputed, position, taken = (
        _column(eddy, name) for name in ("ts", "scores", "user_id", "seed", "reward", "feedback_ts", "imputed",
                                         "position", "taken"))
    counts = np.fromiter(map(len, multis), dtype=np.intp, count=m)
    if None in label_index:
        label_index = [li if li is not None else (la - 1 if la is not None else -1)
                       for li, la in zip(label_index, label_action)]
    chosen = np.array(label_index, dtype=np.intp)
    a_len = np.fromiter(map(len, a_lists), dtype=np.intp, count=m)
    p_len = np.fromiter(map(len, p_lists), dtype=np.intp, count=m)
    bad = (chosen < 0) | (chosen >= counts) | (a_len != counts) | (p_len != counts)
    if bad.any():
        raise lines.fail(int(np.argmax(bad)), "the chosen action, 'a' or 'p' do not match '_multi'")
    width = int(counts.max())
    mask = np.arange(width)[None, :] < counts[:, None]
    total = int(counts.sum())
    ids_1 = np.zeros((m, width), dtype=np.intp)
    ids_1[mask] = np.fromiter(chain.from_iterable(a_lists), dtype=np.intp, count=total)
    # 'a' must list 1..n once each: sorted, each row reads 1, 2, ..., n.
    expected = np.where(mask, np.arange(1, width + 1)[None, :], 0)
    bad = (np.sort(np.where(mask, ids_1, 0), axis=1) != np.sort(expected, axis=1)).any(axis=1)
    if bad.any():
        raise lines.fail(int(np.argmax(bad)), "'a' does not list every action id once")
    pmf = np.zeros((m, width))
    pmf[np.repeat(np.arange(m), counts), ids_1[mask] - 1] = np.fromiter(chain.from_iterable(p_lists),
                                                                          dtype=np.float64, count=total)
    if None in scores or not np.array_equal(np.fromiter(map(len, scores), dtype=np.intp, count=m), counts):
        scores = [s if s is not None and len(s) == n else None for s, n in zip(scores, counts.tolist())]
    try:
        item_ids = [action.i.id for actions in multis for action in actions]
    except AttributeError:  # an action without an id
        item_ids = list(chain.from_iterable(map(_item_ids, multis)))
    if None in request_id:
        request_id = [rid if rid is not None else f"{lines.name}:{lines.lineno(j)}" for j, rid in enumerate(request_id)]
    if None in ts:
        ts = [t if t is not None else _ts(r, _NO_EDDY) for t, r in zip(ts, rows)]
    if None in users or "" in users:
        users = [e or (u or {}).get("user_id") or "unknown" for e, u in zip(users, users_u)]
    if None in contexts:
        contexts = [x if x is not None else {} for x in contexts]
    if None in seed:
        seed = [x or 0 for x in seed]
    if None in reward:
        reward = [-c if r is None else r for r, c in zip(reward, cost)]
    position = [p or 0 for p in position]
    taken = [t or () for t in taken]
    if any(position):  # slates: each line's position and taken actions checked as from_dsjson checks them
        for j, (p, t, c, n) in enumerate(zip(position, taken, chosen.tolist(), counts.tolist())):
            try:
                _check_slate(p, t, c, n)
            except ReplayError as exc:
                raise lines.fail(j, str(exc)) from None

    def build(item_ids: list) -> DecisionColumns:
        return DecisionColumns.build(
            request_id=request_id,
            user_id=users,
            context=contexts,
            ts=ts,
            item_ids=item_ids,
            n_candidates=counts,
            pmf=pmf,
            scores=scores,
            chosen=chosen,
            propensity=propensity,
            seed=seed,
            record=lambda j: lines.round(j).decision,
            origin=lines.origin,
            position=position,
            taken=taken,
        )

    decisions = build(item_ids)
    if not all(i.__class__ is str for i in decisions.vocab):  # a numeric id reads as its text
        decisions = build(list(chain.from_iterable(map(_item_ids, multis))))
    reward = np.array(reward, dtype=np.float64)
    feedback_ts = np.array(feedback_ts, dtype=np.float64)  # None -> NaN
    imputed = np.array(imputed, dtype=bool)  # None -> False
    return DSJsonColumns(decisions, reward, feedback_ts, imputed)
