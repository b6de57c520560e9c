"""The one adapter around vowpal-wabbit-next 0.7.0 (pinned: its API moves).

VW sees each decision as a ``--cb_explore_adf`` multi-line example without a
``shared`` line: one line per candidate, with three namespaces

* ``a``: the candidate's embedding, features ``e0:v0 e1:v1 ...``;
* ``i``: the item id (whitespace, ``|`` and ``:`` replaced by ``_``);
* ``s``: the hybrid model's score, feature ``score``.

The user's context is already inside f(x, item), so no shared line is needed.
VW returns ``[(action_index, probability), ...]`` sorted by probability; the
adapter puts it back in candidate order.

Cost convention: VW minimises cost, Eddy maximises reward, so the chosen line
is labelled ``0:cost:probability`` with ``cost = -reward``.
"""

from __future__ import annotations

import functools
import json
import re
import struct
import zlib
from typing import Any

import numpy as np
import vowpal_wabbit_next as vw

from bandits.base import Candidates, Policy, check_positive, check_probability
from bandits.errors import BanditError

__all__ = ["VWExplorePolicy", "EXPLORATIONS"]

EXPLORATIONS = ("squarecb", "epsilon", "cover")
_MAGIC = b"EDDYVW\x01"
_ID_UNSAFE = re.compile(r"[\s|:]")
_INTERACTION = re.compile(r"^[ais:]{2,3}$")


@functools.lru_cache(maxsize=64)
def _embedding_format(dim: int) -> str:
    """``"|a e0:%.9g e1:%.9g ..."``: one %-format per dimension is the fast way to write many floats."""
    return "|a " + " ".join(f"e{j}:%.9g" for j in range(dim))


def _parse_interactions(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in re.split(r"[+\s]+", value) if part]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and _INTERACTION.match(v) for v in value):
        raise BanditError(
            f"interactions must be namespace pairs or triples from 'a', 'i', 's' (e.g. 'ai+is'); got {value!r}"
        )
    return tuple(value)


class VWExplorePolicy(Policy):
    """Contextual-bandit exploration learned online by Vowpal Wabbit.

    Args:
        exploration: ``"squarecb"`` (default), ``"epsilon"`` or ``"cover"``.
        gamma_scale: squarecb's exploration scale (larger = greedier), > 0.
        epsilon: exploration for ``"epsilon"``, and the uniform floor for ``"cover"``.
        cover: number of cover policies for ``"cover"``, >= 1.
        interactions: quadratic/cubic interactions, e.g. ``"ai"`` or ``"ai+is"``.
        seed: VW's ``--random_seed``.

    The pmf depends only on the model, not on ``rng``; :meth:`decide` samples
    from it with the caller's ``rng``. ``version`` ends with the number of
    examples learned, so a logged decision names the model that made it.

    >>> import numpy as np
    >>> from bandits import Candidates, VWExplorePolicy
    >>> policy = VWExplorePolicy(exploration="epsilon", epsilon=0.2)
    >>> candidates = Candidates(scores=np.zeros(2), embeddings=np.eye(2), action_ids=("x", "y"))
    >>> for _ in range(50):
    ...     policy.learn(candidates, chosen=1, reward=1.0, propensity=0.5)
    ...     policy.learn(candidates, chosen=0, reward=0.0, propensity=0.5)
    >>> policy.distribution(candidates, np.random.default_rng(0)).round(3).tolist()
    [0.1, 0.9]
    >>> policy.version
    'vw/1?cover=3&epsilon=0.2&exploration=epsilon&gamma_scale=10.0&interactions=&seed=0&n_learned=100'
    >>> clone = VWExplorePolicy.from_bytes(policy.to_bytes())
    >>> clone.distribution(candidates, np.random.default_rng(0)).round(3).tolist()
    [0.1, 0.9]
    """

    name = "vw"
    needs = frozenset({"scores", "embeddings", "action_ids"})  # embeddings and ids when given: its features

    def __init__(
        self,
        exploration: str = "squarecb",
        gamma_scale: float = 10.0,
        epsilon: float = 0.05,
        cover: int = 3,
        interactions: str | tuple[str, ...] = (),
        seed: int = 0,
    ) -> None:
        if exploration not in EXPLORATIONS:
            raise BanditError(f"exploration must be one of {EXPLORATIONS}; got {exploration!r}")
        self.exploration = exploration
        self.gamma_scale = check_positive("gamma_scale", gamma_scale)
        self.epsilon = check_probability("epsilon", epsilon)
        self.cover = check_positive("cover", cover, integer=True)
        self.interactions = _parse_interactions(interactions)
        self.seed = check_positive("seed", seed, allow_zero=True, integer=True)
        self._n_learned = 0
        self._workspace = vw.Workspace(self.vw_args())
        self._parser = vw.TextFormatParser(self._workspace)

    # ---- configuration -----------------------------------------------------------------

    def vw_args(self) -> list[str]:
        """The VW command line this policy runs."""
        args = ["--cb_explore_adf", "--quiet", "--random_seed", str(self.seed)]
        if self.exploration == "squarecb":
            args += ["--squarecb", "--gamma_scale", repr(self.gamma_scale)]
        elif self.exploration == "epsilon":
            args += ["--epsilon", repr(self.epsilon)]
        else:
            args += ["--cover", str(self.cover), "--epsilon", repr(self.epsilon)]
        for term in self.interactions:
            args += ["--interactions", term]
        return args

    @property
    def n_learned(self) -> int:
        """Number of examples learned so far."""
        return self._n_learned

    @property
    def version(self) -> str:
        return f"{super().version}&n_learned={self._n_learned}"

    # ---- examples ----------------------------------------------------------------------

    @staticmethod
    def to_vw_lines(candidates: Candidates, label: tuple[int, float, float] | None = None) -> list[str]:
        """One VW text-format line per candidate; ``label=(chosen, cost, probability)`` labels one line.

        >>> from bandits import Candidates, VWExplorePolicy
        >>> VWExplorePolicy.to_vw_lines(
        ...     Candidates(scores=[0.5, 0.25], embeddings=[[1.0, 0.0], [0.5, 2.0]], action_ids=("a b", "c")),
        ...     label=(1, -1.0, 0.5),
        ... )
        ['|a e0:1 e1:0 |i a_b |s score:0.5', '0:-1.0:0.5 |a e0:0.5 e1:2 |i c |s score:0.25']
        """
        emb = candidates.embeddings
        emb_format = _embedding_format(emb.shape[1]) if emb is not None else ""
        rows = emb.tolist() if emb is not None else None
        scores = candidates.scores.tolist()
        lines = []
        for k in range(candidates.n):
            parts = []
            if rows is not None:
                parts.append(emb_format % tuple(rows[k]))
            if candidates.action_ids is not None:
                parts.append("|i " + (_ID_UNSAFE.sub("_", candidates.action_ids[k]) or "_"))
            parts.append("|s score:%.9g" % scores[k])
            line = " ".join(parts)
            if label is not None and label[0] == k:
                line = f"0:{label[1]!r}:{label[2]!r} {line}"
            lines.append(line)
        return lines

    def _examples(self, candidates: Candidates, label: tuple[int, float, float] | None = None) -> list[vw.Example]:
        return [self._parser.parse_line(line) for line in self.to_vw_lines(candidates, label)]

    # ---- predict and learn -------------------------------------------------------------

    def distribution(self, candidates: Candidates, rng: np.random.Generator) -> np.ndarray:
        scored = self._workspace.predict_one(self._examples(candidates))
        pmf = np.zeros(candidates.n)
        for index, probability in scored:
            pmf[index] = probability
        if len(scored) != candidates.n:
            raise BanditError(f"VW returned {len(scored)} probabilities for {candidates.n} candidates")
        return pmf / pmf.sum()  # VW's float32 pmf, renormalised in float64

    def learn(self, candidates: Candidates, chosen: int, reward: float, propensity: float) -> None:
        """Learn from one logged decision; VW's cost is ``-reward``.

        Args:
            candidates: the candidates as they were at decision time.
            chosen: index of the logged action.
            reward: observed reward (higher is better).
            propensity: the logging pmf's probability of ``chosen``, in (0, 1].
        """
        if isinstance(chosen, bool) or not isinstance(chosen, (int, np.integer)) or not 0 <= chosen < candidates.n:
            raise BanditError(f"chosen must be an index in [0, {candidates.n}); got {chosen!r}")
        if isinstance(reward, bool) or not isinstance(reward, (int, float, np.integer, np.floating)):
            raise BanditError(f"reward must be a finite number; got {reward!r}")
        if not np.isfinite(reward):
            raise BanditError(f"reward must be a finite number; got {reward!r}")
        propensity = check_probability("propensity", propensity, low_open=True)
        self._workspace.learn_one(self._examples(candidates, (int(chosen), -float(reward), propensity)))
        self._n_learned += 1

    # ---- persistence -------------------------------------------------------------------

    def model_bytes(self) -> bytes:
        """VW's own model file (``Workspace.serialize()``), loadable by the VW CLI."""
        return self._workspace.serialize()

    def to_bytes(self) -> bytes:
        """Parameters, learned-example count and VW model in one self-describing blob.

        Layout: magic ``EDDYVW\\x01``, 4-byte big-endian header length, JSON header
        (params, n_learned, model size and crc32), then VW's model bytes.
        """
        model = self.model_bytes()
        header = {"params": self.params(), "n_learned": self._n_learned, "size": len(model), "crc32": zlib.crc32(model)}
        encoded = json.dumps(header, sort_keys=True).encode()
        return _MAGIC + struct.pack(">I", len(encoded)) + encoded + model

    @classmethod
    def from_bytes(cls, data: bytes) -> VWExplorePolicy:
        """Rebuild a policy written by :meth:`to_bytes`."""
        if not isinstance(data, (bytes, bytearray)) or not bytes(data[: len(_MAGIC)]) == _MAGIC:
            raise BanditError(f"data is not a VWExplorePolicy blob; got {data!r:.40}")
        start = len(_MAGIC) + 4
        try:
            (size,) = struct.unpack(">I", data[len(_MAGIC) : start])
            header = json.loads(data[start : start + size])
            params = header["params"]
            params["interactions"] = tuple(params["interactions"])
            n_learned = int(header["n_learned"])
            expected_size, expected_crc = int(header["size"]), int(header["crc32"])
        except (struct.error, ValueError, KeyError, TypeError) as exc:
            raise BanditError(f"data has a corrupt VWExplorePolicy header: {exc}") from exc
        model = bytes(data[start + size :])
        # VW loads a truncated model without complaint, so check length and checksum here
        if len(model) != expected_size or zlib.crc32(model) != expected_crc:
            raise BanditError(
                f"data holds a damaged VW model: {len(model)} bytes with crc32 {zlib.crc32(model)}, "
                f"expected {expected_size} bytes with crc32 {expected_crc}"
            )
        try:
            policy = cls(**params)
        except TypeError as exc:
            raise BanditError(f"data has a corrupt VWExplorePolicy header: {exc}") from exc
        try:
            policy._workspace = vw.Workspace(policy.vw_args(), model_data=model)
        except Exception as exc:  # VW raises its own types for a bad model
            raise BanditError(f"data holds no loadable VW model: {exc}") from exc
        policy._parser = vw.TextFormatParser(policy._workspace)
        policy._n_learned = n_learned
        return policy

    def __getstate__(self) -> dict[str, bytes]:
        return {"blob": self.to_bytes()}

    def __setstate__(self, state: dict[str, bytes]) -> None:
        self.__dict__.update(type(self).from_bytes(state["blob"]).__dict__)
