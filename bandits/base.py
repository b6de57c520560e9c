"""What every exploration policy shares: its input, its output, its base class.

A policy sees one decision's :class:`Candidates` and returns a full action
distribution (the pmf). :meth:`Policy.decide` samples one action from that pmf
with a single uniform draw from the caller's ``numpy.random.Generator``, so a
decision is reproducible from the seed the caller recorded (see
:func:`decision_seed`), and the logged propensity is exactly the probability
the pmf gave the chosen action: off-policy estimators need both.

>>> import numpy as np
>>> from bandits import Candidates, EpsilonGreedy, decision_seed
>>> candidates = Candidates(scores=np.array([0.2, 0.9, 0.4]))
>>> seed = decision_seed("request-42")
>>> first = EpsilonGreedy(epsilon=0.3).decide(candidates, np.random.default_rng(seed))
>>> again = EpsilonGreedy(epsilon=0.3).decide(candidates, np.random.default_rng(seed))
>>> first == again
True
>>> first.pmf.round(3).tolist()
[0.1, 0.8, 0.1]
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import inspect
import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from bandits.checks import finite_array
from bandits.draws import first_uniforms
from bandits.errors import BanditError

__all__ = ["Candidates", "Decision", "Policy", "decision_seed", "PMF_TOLERANCE"]

PMF_TOLERANCE = 1e-6
"""How far from 1 a policy's pmf may sum before :meth:`Policy.decide` refuses it."""
_SEED_MASK = (1 << 63) - 1
SMALL_BATCH = 6
""":meth:`Policy.decide_many` decides a batch of at most this many requests one at a time in Python floats,
where the policy has :meth:`Policy.distribution_row`: at low load each query is its own batch, and there the
arrays' per-call cost was most of the decision. Ten candidates a request, us a batch, floats against arrays:
one request 42 against 131, four 145 against 198, six 197 against 224, eight 268 against 251 (the seed's
generator included, about 13 us a request either way)."""


def decision_seed(key: str | bytes) -> int:
    """A stable 63-bit seed from a request id (unlike ``hash``, not salted per process).

    63 bits so that the seed logged with a decision fits a signed 64-bit
    integer in any consumer (Java, Avro, msgspec).

    >>> decision_seed("request-42") == decision_seed(b"request-42")
    True
    >>> 0 <= decision_seed("request-42") < 2**63
    True
    """
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes):
        raise BanditError(f"key must be str or bytes; got {type(key).__name__}")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") & _SEED_MASK


@dataclass(frozen=True, eq=False)
class Candidates:
    """What a policy sees for one decision. Arrays are validated, never modified.

    Attributes:
        scores: (n,) hybrid-model score of each candidate; higher is better.
        embeddings: (n, d) feature-net output f(x, item) per candidate, or None.
        posterior_mean: (d,) the user's posterior mean weight, or None.
        posterior_cov: (d, d) the user's posterior covariance, or None.
        action_ids: n item ids, or None.

    >>> Candidates(scores=[1.0, 2.0]).n
    2
    >>> Candidates(scores=[1.0, float("nan")])
    Traceback (most recent call last):
    ...
    bandits.errors.BanditError: scores must be finite; got nan at index [1]
    """

    scores: np.ndarray
    embeddings: np.ndarray | None = None
    posterior_mean: np.ndarray | None = None
    posterior_cov: np.ndarray | None = None
    action_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        scores = finite_array("scores", self.scores, 1)
        if scores.size == 0:
            raise BanditError("scores must hold at least one candidate; got shape (0,)")
        object.__setattr__(self, "scores", scores)
        n = scores.shape[0]
        d = None
        if self.embeddings is not None:
            emb = finite_array("embeddings", self.embeddings, 2)
            if emb.shape[0] != n:
                raise BanditError(f"embeddings must have {n} rows, one per score; got shape {emb.shape}")
            object.__setattr__(self, "embeddings", emb)
            d = emb.shape[1]
        if self.posterior_mean is not None:
            mean = finite_array("posterior_mean", self.posterior_mean, 1)
            if d is not None and mean.shape[0] != d:
                raise BanditError(f"posterior_mean must have length {d} to match embeddings; got {mean.shape[0]}")
            object.__setattr__(self, "posterior_mean", mean)
            d = mean.shape[0]
        if self.posterior_cov is not None:
            cov = finite_array("posterior_cov", self.posterior_cov, 2)
            if cov.shape[0] != cov.shape[1] or (d is not None and cov.shape[0] != d):
                raise BanditError(f"posterior_cov must be square ({d}, {d}); got shape {cov.shape}")
            object.__setattr__(self, "posterior_cov", cov)
        if self.action_ids is not None:
            ids = tuple(self.action_ids)
            if len(ids) != n or not all(isinstance(i, str) for i in ids):
                raise BanditError(f"action_ids must be {n} strings, one per score; got {ids!r:.80}")
            object.__setattr__(self, "action_ids", ids)

    @property
    def n(self) -> int:
        """Number of candidates."""
        return int(self.scores.shape[0])

    def require(self, *fields: str, policy: str) -> None:
        """Raise a BanditError naming each field ``policy`` needs but did not get."""
        missing = [f for f in fields if getattr(self, f) is None]
        if missing:
            raise BanditError(f"{policy} needs candidates.{', candidates.'.join(missing)}; got None")


@dataclass(frozen=True, eq=False)
class Decision:
    """One sampled decision: everything the propensity log needs.

    Attributes:
        pmf: (n,) the full action distribution (read-only), sums to 1.
        chosen: index of the sampled candidate.
        propensity: ``pmf[chosen]``.
        policy: the policy's name, e.g. ``"epsilon_greedy"``.
        policy_version: stable string from name and parameters (and model version).
    """

    pmf: np.ndarray
    chosen: int
    propensity: float
    policy: str
    policy_version: str

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return (
            self.chosen == other.chosen
            and self.propensity == other.propensity
            and self.policy == other.policy
            and self.policy_version == other.policy_version
            and np.array_equal(self.pmf, other.pmf)
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form for a decision log record."""
        return {
            "pmf": self.pmf.tolist(),
            "chosen": self.chosen,
            "propensity": self.propensity,
            "policy": self.policy,
            "policy_version": self.policy_version,
        }


@functools.cache
def _param_names(cls: type) -> tuple[str, ...]:
    parameters = inspect.signature(cls.__init__).parameters.values()
    return tuple(
        p.name for p in parameters if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


def _format_param(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "+".join(_format_param(v) for v in value)
    return str(value)


class Policy(ABC):
    """Base class: subclasses implement :meth:`distribution`, the rest lives here.

    Constructor arguments are hyperparameters and are stored under the same
    name (so :meth:`params` can read them back); learned state starts with ``_``.
    """

    name: str = "policy"
    version_number: int = 1
    """Bump when a change alters the pmf for the same parameters."""
    needs: ClassVar[frozenset[str]] = frozenset({"scores"})
    """The :class:`Candidates` fields :meth:`distribution` reads. ``{"scores"}``: the
    policy decides from scores alone, so a logged decision's scores are enough to
    replay it; anything more (embeddings, a posterior) the caller must compute."""

    @abstractmethod
    def distribution(self, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        """The (n,) action distribution for ``candidates``."""

    def decide(self, candidates: Candidates, rng: np.random.Generator) -> Decision:
        """Compute the pmf, check it, and sample one action by inverse CDF on one uniform draw."""
        if not isinstance(candidates, Candidates):
            raise BanditError(f"candidates must be a Candidates; got {type(candidates).__name__}")
        if not isinstance(rng, np.random.Generator):
            raise BanditError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
        pmf = self._checked_pmf(self.distribution(candidates, rng), candidates.n)
        cdf = np.cumsum(pmf)
        chosen = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        if chosen >= pmf.shape[0]:  # u * total rounded up to total
            chosen = int(np.flatnonzero(pmf)[-1])
        return Decision(
            pmf=pmf,
            chosen=chosen,
            propensity=float(pmf[chosen]),
            policy=self.name,
            policy_version=self.version,
        )

    def distribution_many(self, scores: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        """(m, K) action distributions of m requests at once, or None if the policy has no batched form.

        ``scores`` is (m, K) with each request's candidates first and padding after;
        ``mask`` (m, K) is True on real candidates. Row i, cut to its real candidates,
        is what :meth:`distribution` gives for those scores (up to rounding); padding
        gets 0. Only policies that need nothing but scores implement it.
        """
        return None

    def distribution_row(self, scores: list[float]) -> list[float] | None:
        """One request's :meth:`distribution_many` row as Python floats, bit for bit, from its scores as
        Python floats (finite, at least one); None if the policy has no such form. What
        :meth:`decide_many` uses for small batches (:data:`SMALL_BATCH`)."""
        return None

    def decide_many(self, scores: list[np.ndarray], seeds: list[int]) -> list[Decision]:
        """One decision per request from its scores alone, each drawn with ``default_rng(seed)``.

        The same decisions as ``decide(Candidates(scores=s), np.random.default_rng(seed))``
        for each request, computed for the whole batch at once where the policy has
        :meth:`distribution_many`.

        >>> from bandits import EpsilonGreedy
        >>> policy = EpsilonGreedy(epsilon=0.2)
        >>> many = policy.decide_many([np.array([0.1, 0.9]), np.array([3.0, 1.0, 2.0])], [7, 8])
        >>> one = [policy.decide(Candidates(scores=s), np.random.default_rng(seed))
        ...        for s, seed in [(np.array([0.1, 0.9]), 7), (np.array([3.0, 1.0, 2.0]), 8)]]
        >>> [(d.chosen, d.propensity) for d in many] == [(d.chosen, d.propensity) for d in one]
        True
        """
        if self.needs != {"scores"} or len(scores) != len(seeds):
            raise BanditError(f"{self.name} needs {sorted(self.needs)}; decide_many gives scores only")
        m = len(scores)
        if m == 0:
            return []
        if m <= SMALL_BATCH:
            small = self._decide_rows(scores, seeds)
            if small is not None:
                return small
        sizes = [len(s) for s in scores]
        k, fewest = max(sizes), min(sizes)
        if fewest < 1:
            raise BanditError("every request needs at least one candidate")
        # The usual batch gives every request as many candidates: no padding, so no masked copies.
        # (This runs once per batch, and for the few requests of a batch at low load its fixed
        # cost is what counts: ``python -m benchmarks.engine_ceiling``, batches of 1.)
        full = fewest == k
        if full:
            matrix = np.array(scores, dtype=np.float64).reshape(m, k)
            mask = np.ones((m, k), dtype=bool)
            finite = np.isfinite(matrix)
        else:
            counts = np.array(sizes)
            mask = np.arange(k)[None, :] < counts[:, None]
            matrix = np.zeros((m, k))
            matrix[mask] = np.concatenate(scores)
            finite = np.isfinite(matrix) | ~mask
        if not finite.all():
            raise BanditError(f"scores must be finite; got NaN or inf in request {int(np.argwhere(~finite)[0][0])}")
        pmf = self.distribution_many(matrix, mask)
        if pmf is None:
            return [self.decide(Candidates(scores=s), np.random.default_rng(seed)) for s, seed in zip(scores, seeds)]
        pmf = np.asarray(pmf, dtype=np.float64)
        if not full:
            pmf = np.where(mask, pmf, 0.0)
        total = pmf.sum(axis=1)
        if not (pmf.min() >= 0.0 and np.isfinite(total).all()):  # NaN fails the comparison
            raise BanditError(f"{self.name} returned a pmf with negative or non-finite values")
        off = np.abs(total - 1.0) > PMF_TOLERANCE
        if off.any():
            raise BanditError(f"{self.name} returned a pmf summing to {float(total[off][0])!r}")
        pmf = pmf / total[:, None]  # a new array: the policy's own stays as it returned it
        cdf = np.cumsum(pmf, axis=1)
        u = first_uniforms(seeds)  # each default_rng(seed).random(), the hash run once for the batch
        rows = np.arange(m)
        if full:
            chosen = (cdf <= (u * cdf[:, -1])[:, None]).sum(axis=1)
        else:
            chosen = ((cdf <= (u * cdf[rows, counts - 1])[:, None]) & mask).sum(axis=1)
        pmf.flags.writeable = False  # each decision's pmf is a view of it, read-only with it
        picked = pmf[rows, np.minimum(chosen, np.array(sizes) - 1)].tolist()
        name, version = self.name, self.version
        out = []
        for i, c in enumerate(chosen.tolist()):
            n = sizes[i]
            row = pmf[i, :n]
            propensity = picked[i]
            if c >= n:  # u * total rounded up to total
                c = int(np.flatnonzero(row)[-1])
                propensity = float(row[c])
            out.append(Decision(pmf=row, chosen=c, propensity=propensity, policy=name, policy_version=version))
        return out

    def _decide_rows(self, scores: list[np.ndarray], seeds: list[int]) -> list[Decision] | None:
        """:meth:`decide_many`'s decisions one request at a time in Python floats (None: the policy has no
        :meth:`distribution_row`). Every step is :meth:`decide`'s on each request alone, in the same order:
        the same floats, so the same pmf, choice and propensity, and the array path's too when no request is
        padded (tests/unit/test_bandits_decide_rows.py)."""
        name, version, out = self.name, self.version, []
        for i, (raw, seed) in enumerate(zip(scores, seeds)):
            s = np.asarray(raw, dtype=np.float64).ravel().tolist()
            n = len(s)
            if n < 1:
                raise BanditError("every request needs at least one candidate")
            if not all(map(math.isfinite, s)):
                raise BanditError(f"scores must be finite; got NaN or inf in request {i}")
            pmf = self.distribution_row(s)
            if pmf is None:
                return None
            if len(pmf) != n:
                raise BanditError(f"{self.name} returned a pmf of {len(pmf)} entries for {n} candidates")
            total = numpy_sum(pmf)
            if not (min(pmf) >= 0.0 and math.isfinite(total)):  # NaN fails the comparison
                raise BanditError(f"{self.name} returned a pmf with negative or non-finite values")
            if abs(total - 1.0) > PMF_TOLERANCE:
                raise BanditError(f"{self.name} returned a pmf summing to {total!r}")
            pmf = [p / total for p in pmf]
            cdf = list(itertools.accumulate(pmf))  # numpy's cumsum: left to right
            c = bisect.bisect_right(cdf, np.random.default_rng(seed).random() * cdf[-1])  # how many cdf <= u * total
            if c >= n:  # u * total rounded up to total
                c = max(j for j, p in enumerate(pmf) if p != 0.0)
            row = np.array(pmf)
            row.flags.writeable = False
            out.append(Decision(pmf=row, chosen=c, propensity=pmf[c], policy=name, policy_version=version))
        return out

    def _checked_pmf(self, pmf: Any, n: int) -> np.ndarray:
        pmf = np.array(pmf, dtype=np.float64)  # a copy we own
        if pmf.shape != (n,):
            raise BanditError(f"{self.name} returned a pmf of shape {pmf.shape}; expected ({n},)")
        total = float(pmf.sum())
        if not pmf.min() >= 0.0 or not math.isfinite(total):  # NaN fails the comparison
            raise BanditError(f"{self.name} returned a pmf with negative or non-finite values: {pmf!r:.120}")
        if abs(total - 1.0) > PMF_TOLERANCE:
            raise BanditError(f"{self.name} returned a pmf summing to {total!r}; expected 1 within {PMF_TOLERANCE}")
        pmf /= total
        pmf.flags.writeable = False
        return pmf

    def params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes of the same name."""
        return {name: getattr(self, name) for name in _param_names(type(self))}

    @property
    def version(self) -> str:
        """``name/version_number?k=v&...`` with parameters sorted by name."""
        query = "&".join(f"{k}={_format_param(v)}" for k, v in sorted(self.params().items()))
        base = f"{self.name}/{self.version_number}"
        return f"{base}?{query}" if query else base

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


# ---- small shared helpers for policies -------------------------------------------------


def numpy_sum(values: list[float]) -> float:
    """``float(np.sum(values))`` bit for bit, in Python floats: numpy's pairwise summation (eight running sums
    over blocks of up to 128, halves above that; below eight, left to right), which rounds differently
    from ``sum``. For a few values it is cheaper than making the array.

    >>> import numpy as np
    >>> numpy_sum([0.1] * 10), float(np.sum([0.1] * 10)), sum([0.1] * 10)
    (1.0, 1.0, 0.9999999999999999)
    """
    return _pairwise(values, 0, len(values))


def _pairwise(a: list[float], lo: int, n: int) -> float:
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3, r4, r5, r6, r7 = a[lo:lo + 8]
        i, end = 8, n - n % 8
        while i < end:
            b = lo + i
            r0, r1, r2, r3 = r0 + a[b], r1 + a[b + 1], r2 + a[b + 2], r3 + a[b + 3]
            r4, r5, r6, r7 = r4 + a[b + 4], r5 + a[b + 5], r6 + a[b + 6], r7 + a[b + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for j in range(lo + i, lo + n):
            res += a[j]
        return res
    half = n // 2
    half -= half % 8
    return _pairwise(a, lo, half) + _pairwise(a, lo + half, n - half)


def check_probability(name: str, value: Any, *, low_open: bool = False) -> float:
    """``value`` as a float in [0, 1] (or (0, 1] if ``low_open``), else a BanditError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise BanditError(f"{name} must be a number in [0, 1]; got {value!r}")
    value = float(value)
    if not (0.0 <= value <= 1.0) or (low_open and value == 0.0) or math.isnan(value):
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise BanditError(f"{name} must be in {interval}; got {value!r}")
    return value


def check_positive(name: str, value: Any, *, allow_zero: bool = False, integer: bool = False) -> Any:
    """``value`` as a positive float (or int), else a BanditError naming ``name``."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise BanditError(f"{name} must be a {'integer' if integer else 'number'}; got {value!r}")
    ok = value >= 0 if allow_zero else value > 0
    if not ok or not math.isfinite(value):
        raise BanditError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite; got {value!r}")
    return int(value) if integer else float(value)


def argmax_mask(values: np.ndarray) -> np.ndarray:
    """(n,) float mask spreading mass 1 evenly over the maxima of ``values``."""
    mask = (values == values.max()).astype(np.float64)
    return mask / mask.sum()
