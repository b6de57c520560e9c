"""Target policies for replay, each turned into an (n, n_actions) action distribution.

A target is given on the command line (``--policy``, repeatable) as one of:

* ``logging``: the logged pmf itself (its IPS/SNIPS estimate is the on-policy average);
* ``uniform``: uniform over each decision's candidates;
* a policy spec over the *logged* scores, e.g. ``greedy``,
  ``epsilon_greedy:epsilon=0.05``, ``softmax:temperature=0.2``: the pmf
  ``bandits.make_policy(spec)`` gives each decision's logged scores, its rng
  seeded with the decision's seed (so a stochastic policy draws what the
  worker would have drawn);
* ``fn=<version>:<spec>``: scores recomputed with that feature net and the
  users' *current* weights from Redis (:mod:`stream.replay.fn_target`);
* ``logged=<version>:<spec>``: the spec over the scores that version gave at decision
  time, logged by model selection (:mod:`stream.replay.version_target`);
* ``vw=<path>``: a saved VW ``--cb_explore_adf`` model trained on Eddy's
  DSJSON (:mod:`stream.replay.vw_target`);
* ``table=<path.json>``: a table of action probabilities per context
  (:func:`table_distribution`).

Greedy, epsilon-greedy and softmax are computed on the whole padded score
matrix at once; any other policy goes decision by decision through
``Policy.decide``, the worker's own code path.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bandits import BanditError, Candidates, EpsilonGreedy, Policy, Softmax, make_policy
from stream.replay.dataset import BanditLog
from stream.replay.errors import ReplayError

__all__ = ["TargetSpec", "Fallback", "parse_target", "policy_distribution", "table_distribution", "context_key"]


@dataclass(frozen=True)
class Fallback:
    """Decisions a target could not score itself and gave a default pmf instead (uniform over the candidates).

    Attributes:
        count: how many decisions fell back.
        total: the decisions of the log.
        reason: why, in words.
        first: where the first of them was read (``path:line`` of a DSJSON file, else its request id).
    """

    count: int
    total: int
    reason: str
    first: str

    def message(self) -> str:
        return (f"{self.count} of {self.total} decisions ({100 * self.count / self.total:.3g}%) fell back to "
                f"uniform ({self.reason}; first: {self.first})")


@dataclass(frozen=True)
class TargetSpec:
    """One parsed ``--policy`` value.

    Attributes:
        label: the text as given (used in tables, JSON and plots).
        kind: one of ``logging``, ``uniform``, ``scores``, ``fn``, ``logged``, ``vw``, ``table``.
        policy: the bandit policy spec (``scores``, ``fn`` and ``logged``).
        version: the feature-net version (``fn`` and ``logged``).
        path: the model or table file (``vw`` and ``table``).
    """

    label: str
    kind: str
    policy: str | None = None
    version: str | None = None
    path: str | None = None


def _check_policy(spec: str, where: str) -> str:
    try:
        make_policy(spec)
    except BanditError as exc:
        raise ReplayError(f"--policy {where!r}: {exc}") from None
    return spec


def parse_target(text: str) -> TargetSpec:
    """Parse one ``--policy`` value; errors name the value (checked before any log is read).

    >>> parse_target("fn=v3:softmax:temperature=0.2")
    TargetSpec(label='fn=v3:softmax:temperature=0.2', kind='fn', policy='softmax:temperature=0.2', version='v3', path=None)
    >>> parse_target("greedy").kind, parse_target("logging").kind, parse_target("uniform").kind
    ('scores', 'logging', 'uniform')
    >>> parse_target("vw=no-such-model.vw")
    Traceback (most recent call last):
    ...
    stream.replay.errors.ReplayError: --policy 'vw=no-such-model.vw': no such file 'no-such-model.vw'
    >>> parse_target("softmax:temp=1")
    Traceback (most recent call last):
    ...
    stream.replay.errors.ReplayError: --policy 'softmax:temp=1': unknown parameter 'temp' for policy 'softmax'; expected one of ['temperature']
    """
    if not isinstance(text, str) or not text.strip():
        raise ReplayError(f"--policy must be a non-empty string, got {text!r}")
    text = text.strip()
    if text in ("logging", "uniform"):
        return TargetSpec(text, text)
    if text.startswith("logged="):
        version, sep, policy = text[7:].partition(":")
        if not version or not sep or not policy:
            raise ReplayError(f"--policy {text!r}: expected logged=<version>:<policy spec>, e.g. logged=v3:greedy")
        return TargetSpec(text, "logged", policy=_check_policy(policy, text), version=version)
    if text.startswith("fn="):
        version, sep, policy = text[3:].partition(":")
        if not version or not sep or not policy:
            raise ReplayError(f"--policy {text!r}: expected fn=<version>:<policy spec>, e.g. fn=v3:greedy")
        return TargetSpec(text, "fn", policy=_check_policy(policy, text), version=version)
    for kind in ("vw", "table"):
        if text.startswith(kind + "="):
            path = text[len(kind) + 1:]
            if not Path(path).is_file():
                raise ReplayError(f"--policy {text!r}: no such file {path!r}")
            return TargetSpec(text, kind, path=path)
    return TargetSpec(text, "scores", policy=_check_policy(text, text))


# --------------------------------------------------------------- policy over scores


def _vectorised(policy: Policy, scores: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The pmf of every row at once for the policies whose pmf is a closed form of the scores."""
    n_cand = mask.sum(axis=1, keepdims=True)
    masked = np.where(mask, scores, -np.inf)
    best = masked.max(axis=1, keepdims=True)
    if isinstance(policy, EpsilonGreedy):  # Greedy included (epsilon 0)
        top = (masked == best) & mask
        greedy = top / top.sum(axis=1, keepdims=True)
        dist = policy.epsilon / n_cand + (1.0 - policy.epsilon) * greedy
    elif isinstance(policy, Softmax):
        dist = np.exp((masked - best) / policy.temperature)
    else:
        return None
    dist = np.where(mask, dist, 0.0)
    return dist / dist.sum(axis=1, keepdims=True)


def policy_distribution(policy: Policy, scores: np.ndarray, mask: np.ndarray, seeds: np.ndarray, *,
                        candidates: Any = None) -> np.ndarray:
    """(n, K) pmf of ``policy`` on each row's scores; padded columns 0.

    ``candidates(i, m) -> Candidates`` may supply richer candidates (embeddings,
    posteriors) for policies that need them; by default a row's candidates are
    its scores alone. Rows are seeded with ``seeds[i]``.
    """
    if not np.all(np.isfinite(scores[mask])):
        raise ReplayError(f"policy {policy.version!r} needs the logged scores, and this log has none "
                          "(a DSJSON file written by another tool?): use logging, uniform, vw= or table= targets")
    if candidates is None:
        fast = _vectorised(policy, scores, mask)
        if fast is not None:
            return fast
    n, k = scores.shape
    out = np.zeros((n, k))
    counts = mask.sum(axis=1)
    for i in range(n):
        m = int(counts[i])
        c = candidates(i, m) if candidates is not None else Candidates(scores=scores[i, :m])
        try:
            out[i, :m] = policy.decide(c, np.random.default_rng(int(seeds[i]))).pmf
        except BanditError as exc:
            raise ReplayError(f"policy {policy.version!r} cannot be replayed on this log: {exc} "
                              "(logged decisions carry scores only; fn=<version>:<spec> recomputes embeddings)") from None
    return out


def uniform_distribution(log: BanditLog) -> np.ndarray:
    """(n, K) uniform over each round's candidates."""
    return log.mask / log.n_candidates[:, None]


# ---------------------------------------------------------------------- table


def _format_value(v: Any) -> str:
    if isinstance(v, float) and math.isfinite(v):
        return format(v, "g")
    return str(v)


def context_key(context: dict, user_id: str, names: list[str] | None) -> str:
    """The table key of a decision: ``name=value`` pairs joined by ``,``.

    ``names`` lists which context features make the key (``user_id`` is the
    user); None means every context feature, sorted by name. Numbers are
    written with ``%g`` (``3.0`` -> ``3``).

    >>> context_key({"hour": 3.0, "device": "tv"}, "u1", None)
    'device=tv,hour=3'
    >>> context_key({"hour": 3.0, "device": "tv"}, "u1", ["user_id", "device"])
    'user_id=u1,device=tv'
    """
    if names is None:
        names = sorted(context)
    parts = []
    for name in names:
        value = user_id if name == "user_id" else context.get(name, "")
        parts.append(f"{name}={_format_value(value)}")
    return ",".join(parts)


def load_table(path: str) -> tuple[list[str] | None, dict[str, dict[str, float]]]:
    """Read and check a table file: ``{"_key": [names]?, "<context key>" | "*": {item: prob}}``."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except OSError as exc:
        raise ReplayError(f"table {path!r}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ReplayError(f"table {path!r}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise ReplayError(f"table {path!r} must be a JSON object of context key -> {{item id: probability}}")
    names = raw.pop("_key", None)
    if names is not None and (not isinstance(names, list) or not all(isinstance(s, str) for s in names)):
        raise ReplayError(f"table {path!r}: '_key' must be a list of context feature names, got {names!r}")
    rows: dict[str, dict[str, float]] = {}
    for key, row in raw.items():
        if not isinstance(row, dict):
            raise ReplayError(f"table {path!r}: entry {key!r} must be an object of item id -> probability")
        for item, p in row.items():
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not (p >= 0 and math.isfinite(p)):
                raise ReplayError(f"table {path!r}: probability of item {item!r} under {key!r} must be a "
                                  f"finite number >= 0, got {p!r}")
        rows[key] = {str(i): float(p) for i, p in row.items()}
    if not rows:
        raise ReplayError(f"table {path!r} has no entries")
    return names, rows


def table_distribution(path: str, log: BanditLog) -> tuple[np.ndarray, list[str], Fallback | None]:
    """(n, K) pmf from a table, notes, and the decisions that fell back to uniform (None if none).

    Each decision looks up its :func:`context_key`; the row's probabilities of
    the decision's candidates are renormalised over them (items not in the row
    get 0). A missing key, or a row with no mass on any candidate, uses the
    ``"*"`` row (the table's own default, so not a fallback), then uniform
    (a fallback, which replay refuses unless ``--allow-fallback``); the notes
    count each.
    """
    names, rows = load_table(path)
    vocab, index = log.item_index
    pos = {item: j for j, item in enumerate(vocab.tolist())}
    keys = list(rows)
    table = np.zeros((len(keys) + 1, len(vocab) + 1))  # last row: no entry; last column: padding
    for r, key in enumerate(keys):
        for item, p in rows[key].items():
            j = pos.get(item)
            if j is not None:
                table[r, j] = p
    key_row = {key: r for r, key in enumerate(keys)}
    missing = len(keys)
    row_of = np.fromiter((key_row.get(context_key(c, u, names), missing)
                          for c, u in zip(log.contexts.tolist(), log.users.tolist())), dtype=np.intp, count=log.n_rounds)
    cols = np.where(index >= 0, index, len(vocab))

    def gather(table_rows: np.ndarray, which: np.ndarray) -> np.ndarray:
        return np.where(log.mask[which], table[table_rows[:, None], cols[which]], 0.0)

    dist = gather(row_of, np.ones(log.n_rounds, dtype=bool))
    empty = dist.sum(axis=1) <= 0
    unmatched = row_of == missing
    notes = []
    if unmatched.any():
        notes.append(f"{int(unmatched.sum())} of {log.n_rounds} decisions have no table entry for their context key")
    if (empty & ~unmatched).any():
        notes.append(f"{int((empty & ~unmatched).sum())} of {log.n_rounds} decisions' table entry gives no "
                     "probability to any of their candidates")
    if empty.any():
        star = key_row.get("*", missing)
        dist[empty] = gather(np.full(int(empty.sum()), star), empty)
        if star != missing:
            notes.append(f"{int(empty.sum())} decisions used the '*' entry")
        still = dist.sum(axis=1) <= 0
        if still.any():
            dist[still] = uniform_distribution(log)[still]
            first = int(np.argmax(still))
            key = context_key(log.contexts[first], log.users[first], names)
            why = "no table entry for their context key" if unmatched[first] else \
                "their table entry gives no probability to any of their candidates"
            fallback = Fallback(int(still.sum()), log.n_rounds, f"{why}, and no '*' entry",
                                f"{log.rounds.where(first)}, key {key!r}")
            notes.append(fallback.message())
            return dist / dist.sum(axis=1, keepdims=True), notes, fallback
    return dist / dist.sum(axis=1, keepdims=True), notes, None
