"""Vowpal Wabbit policies on the log: train one offline (``--learn``) and replay a saved one (``vw=PATH``).

Both use Eddy's DSJSON lines (:mod:`stream.replay.dsjson`) as VW's input, so
a model trained here, or by ``vw --cb_explore_adf --dsjson`` on an
``eddy export --format dsjson`` file, can be replayed, and vice versa. VW's
model file keeps its reduction options (``--cb_explore_adf``, exploration,
interactions), so loading needs no arguments.

Training is one pass over the rounds in time order: ``--cb_explore_adf``
with ``--cb_type dr`` (doubly-robust cost estimates, the default) or ``ips``,
epsilon-greedy exploration, and interactions of the user and context
namespaces with the item namespaces (``ui xi xf``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from stream.replay.dataset import BanditLog
from stream.replay.dsjson import dsjson_line, unlabeled_line
from stream.replay.errors import ReplayError

__all__ = ["DEFAULT_INTERACTIONS", "train_vw", "load_vw", "vw_distribution", "vw_args", "check_vw_args", "save_vw"]

DEFAULT_INTERACTIONS = ("ui", "xi", "xf")
CB_TYPES = ("dr", "ips")


def vw_args(*, cb_type: str = "dr", epsilon: float = 0.05, interactions: Sequence[str] = DEFAULT_INTERACTIONS,
            seed: int = 0, extra: Sequence[str] = ()) -> list[str]:
    """The VW command line ``--learn`` trains with.

    >>> vw_args(cb_type="ips", epsilon=0.1, interactions=("ui",))
    ['--cb_explore_adf', '--quiet', '--cb_type', 'ips', '--epsilon', '0.1', '--random_seed', '0', '--interactions', 'ui']
    """
    if cb_type not in CB_TYPES:
        raise ReplayError(f"--cb-type must be one of {CB_TYPES}, got {cb_type!r}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0 <= epsilon <= 1:
        raise ReplayError(f"--learn-epsilon must be in [0, 1], got {epsilon!r}")
    args = ["--cb_explore_adf", "--quiet", "--cb_type", cb_type, "--epsilon", repr(float(epsilon)),
            "--random_seed", str(int(seed))]
    for term in interactions:
        args += ["--interactions", term]
    return args + list(extra)


def _workspace(args: list[str], model_data: bytes | None = None):
    import vowpal_wabbit_next as vw

    try:
        ws = vw.Workspace(args, model_data=model_data) if model_data is not None else vw.Workspace(args)
    except Exception as exc:  # VW raises its own types for bad options or a bad model
        raise ReplayError(f"VW refused {' '.join(args)!r}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}") from None
    if not ws.multiline or "ActionProbs" not in str(ws.prediction_type):
        raise ReplayError(f"the VW model is not a --cb_explore_adf model (prediction type {ws.prediction_type})")
    return ws


def check_vw_args(args: list[str]) -> None:
    """ReplayError now (before any log is read) if VW refuses ``args``."""
    _workspace(args)


def train_vw(log: BanditLog, args: list[str], *, passes: int = 1):
    """A VW workspace trained on every round of ``log`` (time order), ``passes`` times."""
    import vowpal_wabbit_next as vw

    if passes < 1:
        raise ReplayError(f"--learn-passes must be >= 1, got {passes}")
    ws = _workspace(args)
    parser = vw.DSJsonFormatParser(ws)
    lines = [dsjson_line(r) for r in log.rounds]
    for _ in range(passes):
        for line in lines:
            ws.learn_one(parser.parse_json(line))
    return ws


def load_vw(path: str | Path):
    """A VW workspace from a model file written by ``--save-model`` or ``vw -f``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ReplayError(f"cannot read VW model {str(path)!r}: {exc.strerror}") from None
    return _workspace(["--quiet"], model_data=data)


def vw_distribution(ws, log: BanditLog) -> np.ndarray:
    """(n, K) the VW policy's pmf for every round (padded columns 0), one ``predict_one`` per round."""
    import vowpal_wabbit_next as vw

    parser = vw.DSJsonFormatParser(ws)
    out = np.zeros((log.n_rounds, log.n_actions))
    for i, r in enumerate(log.rounds):
        scored = ws.predict_one(parser.parse_json(unlabeled_line(r)))
        if len(scored) != log.n_candidates[i]:
            raise ReplayError(f"VW returned {len(scored)} probabilities for the {log.n_candidates[i]} candidates "
                              f"of decision {r.decision.request_id!r}")
        for index, probability in scored:
            out[i, index] = probability
    return out / out.sum(axis=1, keepdims=True)  # VW's float32 pmf, renormalised in float64


def save_vw(ws, path: str | Path) -> Path:
    """Write VW's own model file (loadable by :func:`load_vw` and ``vw -i``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ws.serialize())
    return path
