"""A trained feature net ready to serve: net + encoder + device + version.

:meth:`FeatureModel.embed` maps one query's candidates to ``f(x, item)``
rows; :meth:`FeatureModel.embed_many` does many queries in one forward
pass. Both return float32 numpy arrays: on CPU the MLP kind's forward pass
runs in numpy on the net's own parameters (:meth:`FeatureNet.forward_numpy`),
elsewhere under :func:`torch.inference_mode`. Threads are left to the caller:
PyTorch and numpy's BLAS use every core by default, which hurts small batches
in a worker that shares its cores; such a worker calls :func:`limit_threads`
at start-up.

Artifact layout (one directory per version, written by :meth:`save`)::

    weights.pt    state_dict of the FeatureNet (torch.save); for the text kind, the head only
    config.json   {"format": 1, "feature_net": FeatureNetConfig (its "kind": "mlp" when absent),
                   "encoder": standardisation stats}
    metrics.json  training metrics (train_rmse, val_rmse, ...)
    meta.json     version, created_at, data_range, device, n_train, n_val, ...
    users.npz     user_ids (n,) str, W (n, output_dim) float32, b (n,) float32

>>> import tempfile, pathlib
>>> from features.config import FeatureNetConfig
>>> cfg = FeatureNetConfig(context_numeric=("hour",), hash_buckets=64, output_dim=4)
>>> m = FeatureModel.create(cfg, version="v0", device="cpu", seed=0)
>>> m.embed({"hour": 1}, [{"id": "a"}, {"id": "b"}]).shape
(2, 4)
>>> with tempfile.TemporaryDirectory() as d:
...     _ = m.save(pathlib.Path(d) / "v0")
...     m2 = FeatureModel.load(pathlib.Path(d) / "v0", device="cpu")
>>> bool((m2.embed({"hour": 1}, [{"id": "a"}]) == m.embed({"hour": 1}, [{"id": "a"}])).all())
True
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from features.cache import FeatureCache
from features.config import FeatureNetConfig
from features.encoder import EncodedBatch, FeatureEncoder
from features.errors import FeatureError
from features.net import FeatureNet, resolve_device

__all__ = ["ARTIFACT_FILES", "FeatureModel", "limit_threads"]

ARTIFACT_FORMAT = 1
ARTIFACT_FILES = ("weights.pt", "config.json", "metrics.json", "meta.json", "users.npz")

Context = Mapping[str, Any]
Item = Mapping[str, Any]


def limit_threads(n: int) -> None:
    """At most ``n`` threads for torch's intra-op work and for the BLAS that numpy calls (threadpoolctl),
    for the whole process: the forward pass runs in either, and a BLAS left alone spreads a
    320-row product over every core (about 2x the CPU for the same wall time on two cores)."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")


class FeatureModel:
    """The served feature net.

    Attributes
    ----------
    net, encoder, device, version:
        The net (in eval mode, on ``device``), its encoder and a version label.
    metrics:
        Training metrics (JSON-ready dict).
    user_weights:
        Offline-learned ``{user_id: (w_u float32 (output_dim,), b_u float)}``,
        consistent with this net (``b_u`` includes the global bias).
    meta:
        Provenance: version, created_at, data_range, device, n_train, n_val.
    """

    def __init__(
        self,
        net: FeatureNet,
        encoder: FeatureEncoder,
        *,
        version: str,
        device: torch.device | str | None = None,
        metrics: Mapping[str, Any] | None = None,
        user_weights: Mapping[str, tuple[np.ndarray, float]] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(net, FeatureNet):
            raise FeatureError(f"net must be a FeatureNet, got {type(net).__name__}")
        if not isinstance(encoder, FeatureEncoder):
            raise FeatureError(f"encoder must be a FeatureEncoder, got {type(encoder).__name__}")
        if net.config != encoder.config:
            raise FeatureError(f"net and encoder configs differ: {net.config!r} != {encoder.config!r}")
        if not isinstance(version, str) or not version or "/" in version:
            raise FeatureError(f"version must be a non-empty string without '/', got {version!r}")
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.encoder = encoder
        self.version = version
        self.metrics: dict[str, Any] = dict(metrics or {})
        self.meta: dict[str, Any] = dict(meta or {})
        self.user_weights: dict[str, tuple[np.ndarray, float]] = {}
        d = self.config.output_dim
        for user, (w, b) in (user_weights or {}).items():
            w = np.asarray(w, dtype=np.float32)
            if w.shape != (d,):
                raise FeatureError(f"user_weights[{user!r}] w must have shape ({d},), got {w.shape}")
            self.user_weights[str(user)] = (w, float(b))

    @classmethod
    def create(
        cls, config: FeatureNetConfig, *, version: str = "untrained", device: torch.device | str | None = None, seed: int = 0
    ) -> FeatureModel:
        """An untrained model (random net, unfitted encoder) — for tests and wiring."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = FeatureNet(config)
        return cls(net, FeatureEncoder(config), version=version, device=device)

    @property
    def config(self) -> FeatureNetConfig:
        return self.net.config

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    # ---------------------------------------------------------------- serving
    @property
    def kind(self) -> str:
        """``"mlp"`` or ``"text"`` (:data:`features.config.KINDS`)."""
        return self.config.kind

    @property
    def text_encoder(self):
        """The text kind's frozen sentence encoder (:mod:`features.text`), loaded on first use."""
        from features.text import text_encoder

        return text_encoder(str(self.device))

    def embed(self, context: Context, items: Sequence[Item], *, cache: FeatureCache | None = None) -> np.ndarray:
        """``f(context, item)`` for each item: float32 ``(len(items), output_dim)``."""
        return self.embed_many([(context, items)], cache=cache)[0]

    def embed_many(self, queries: Sequence[tuple[Context, Sequence[Item]]], *,
                   cache: FeatureCache | None = None, coarsened: list[tuple[int, ...]] | None = None) -> list[np.ndarray]:
        """:meth:`embed` for many ``(context, items)`` queries in one forward pass.

        Returns one float32 ``(len(items_q), output_dim)`` array per query (views
        into one array). With ``cache`` (this version's, :mod:`features.cache`), the
        expensive part is looked up first and only the misses are computed: the text
        kind's sentence encodings, or the MLP kind's whole rows.

        ``coarsened``: a list that receives, per query, the indices of its candidates whose row came
        from a cache entry computed for another input (LSH coarsening, ``cache.lsh_bits`` > 0; the
        text kind's keys are exact, so its tuples are empty).
        """
        counts = [len(q[1]) for q in queries]
        total = sum(counts)
        flagged: set[int] = set()  # rows (over the whole batch) served from a coarsened entry
        if total == 0:
            if coarsened is not None:
                coarsened.extend(() for _ in counts)
            return [np.zeros((0, self.output_dim), dtype=np.float32) for _ in counts]
        if cache is not None and cache.version != self.version:
            raise FeatureError(f"feature net {self.version!r} was given the cache of version {cache.version!r}")
        batch = self.encoder.encode_many(queries)
        if cache is not None:
            rows = np.repeat(np.arange(len(queries)), counts)
            items = [it for q in queries for it in q[1]]

            def source(i: int) -> tuple[Context, Item]:
                return queries[rows[i]][0], items[i]
        if self.kind == "text":
            from features.text import item_texts

            texts = item_texts([it for q in queries for it in q[1]], self.config.item_text)
            if cache is None:
                encoded = self.text_encoder.encode(texts)
            else:
                encoded = np.stack(cache.get_or_compute(
                    texts, lambda idx: self.text_encoder.encode([texts[i] for i in idx]), source=source))
            out = self._forward(batch.with_text(torch.from_numpy(encoded)))
        elif cache is None:
            out = self._forward(batch)
        else:
            numeric = batch.numeric.numpy()
            exact = np.concatenate([batch.categorical.numpy(), batch.item_ids.numpy()[:, None]], axis=1)
            keys = cache.row_keys(numeric, exact)
            out = np.stack(cache.get_or_compute(
                keys, lambda idx: self._forward(batch.take(torch.as_tensor(idx, dtype=torch.long))), source=source,
                exact=cache.exact_keys(numeric, exact) if cache.lsh_bits else None, coarsened=flagged))
        if coarsened is not None:
            per_query: list[list[int]] = [[] for _ in counts]
            query_of = np.repeat(np.arange(len(counts)), counts)
            starts = np.cumsum([0] + counts[:-1])
            for i in sorted(flagged):
                per_query[query_of[i]].append(int(i - starts[query_of[i]]))
            coarsened.extend(tuple(q) for q in per_query)
        ends = list(itertools.accumulate(counts))  # slices, not np.split: the same views (2 us, not 14, for four)
        return [out[end - n:end] for n, end in zip(counts, ends)]

    def _forward(self, batch: EncodedBatch) -> np.ndarray:
        out = self.net.forward_numpy(batch)  # on CPU: the same net without torch's dispatch (FeatureNet.forward_numpy)
        if out is not None:
            return out
        with torch.inference_mode():
            if self.device.type != "cpu":
                batch = batch.to(self.device, non_blocking=True)
            return self.net(batch).float().cpu().numpy()

    def mean_user_weights(self) -> tuple[np.ndarray, float]:
        """The population prior, the start for a new user (Velox): the one the offline users were
        solved towards (``meta["population_prior"]``), else the average ``(w, b)`` over offline
        users. Zeros when there are no offline users.
        """
        prior = self.meta.get("population_prior")
        if prior is not None:
            return np.asarray(prior["w"], dtype=np.float32), float(prior["b"])
        if not self.user_weights:
            return np.zeros(self.output_dim, dtype=np.float32), 0.0
        W = np.stack([w for w, _ in self.user_weights.values()])
        b = np.array([b for _, b in self.user_weights.values()])
        return W.mean(axis=0).astype(np.float32), float(b.mean())

    def predict(self, user_id: str, context: Context, items: Sequence[Item]) -> np.ndarray:
        """Offline hybrid score ``w_u . f + b_u`` per item (mean user if unseen)."""
        w, b = self.user_weights.get(user_id) or self.mean_user_weights()
        return self.embed(context, items) @ w + np.float32(b)

    # -------------------------------------------------------------- artifacts
    def save(self, directory: Path | str, *, data_range: Any = None) -> Path:
        """Write the artifact into ``directory`` (created if needed); returns it.

        ``data_range`` (any JSON value, e.g. ``{"from": ts0, "to": ts1}`` or
        topic offsets) is recorded in ``meta.json``; ``None`` keeps the one
        already in :attr:`meta`. Each file is written to a temporary name and
        renamed, and ``meta.json`` last, so a directory with ``meta.json``
        holds a complete artifact.
        """
        directory = Path(directory)
        meta = dict(self.meta)
        meta.update(version=self.version, format=ARTIFACT_FORMAT)
        meta.setdefault("created_at", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
        meta.setdefault("device", str(self.device))
        if data_range is not None:
            meta["data_range"] = data_range
        meta.setdefault("data_range", None)
        config_doc = {"format": ARTIFACT_FORMAT, "feature_net": self.config.to_dict(), "encoder": self.encoder.stats}
        try:
            texts = {
                "config.json": json.dumps(config_doc, indent=2),
                "metrics.json": json.dumps(self.metrics, indent=2, allow_nan=False),
                "meta.json": json.dumps(meta, indent=2, allow_nan=False),
            }
        except (TypeError, ValueError) as exc:
            raise FeatureError(f"metrics, meta and data_range must be JSON-serialisable: {exc}") from None
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        _atomic(directory / "weights.pt", lambda f: torch.save(state, f))
        ids = list(self.user_weights)
        W = np.zeros((len(ids), self.output_dim), dtype=np.float32)
        b = np.zeros(len(ids), dtype=np.float32)
        for i, u in enumerate(ids):
            W[i], b[i] = self.user_weights[u]
        user_ids = np.array(ids, dtype=np.str_) if ids else np.zeros(0, dtype="<U1")
        _atomic(directory / "users.npz", lambda f: np.savez(f, user_ids=user_ids, W=W, b=b))
        for name in ("config.json", "metrics.json", "meta.json"):
            _atomic(directory / name, lambda f, t=texts[name]: f.write(t.encode("utf-8")))
        self.meta = meta
        return directory

    @classmethod
    def load(cls, directory: Path | str, device: torch.device | str | None = None) -> FeatureModel:
        """Read an artifact written by :meth:`save`; :class:`FeatureError` names any bad path."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FeatureError(f"artifact directory {str(directory)!r} does not exist")
        for name in ARTIFACT_FILES:
            if not (directory / name).is_file():
                raise FeatureError(f"artifact file {str(directory / name)!r} is missing")
        config_doc = _read_json(directory / "config.json")
        meta = _read_json(directory / "meta.json")
        metrics = _read_json(directory / "metrics.json")
        path = directory / "config.json"
        if not isinstance(config_doc, dict) or config_doc.get("format") != ARTIFACT_FORMAT:
            raise FeatureError(f"{str(path)!r}: format must be {ARTIFACT_FORMAT}, got {config_doc!r:.80}")
        try:
            config = FeatureNetConfig.from_dict(config_doc["feature_net"])
            encoder = FeatureEncoder(config, stats=config_doc["encoder"])
        except (KeyError, TypeError, FeatureError) as exc:
            raise FeatureError(f"{str(path)!r} is invalid: {exc}") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("version"), str):
            raise FeatureError(f"{str(directory / 'meta.json')!r} must hold a 'version' string")
        dev = resolve_device(device)
        path = directory / "weights.pt"
        try:
            state = torch.load(path, map_location=dev, weights_only=True)
            net = FeatureNet(config)
            net.load_state_dict(state)
        except Exception as exc:  # corrupt zip, pickle, shape mismatch...
            raise FeatureError(f"{str(path)!r} is not a valid state_dict for this config: {exc}") from None
        path = directory / "users.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, W, b = z["user_ids"], z["W"], z["b"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise FeatureError(f"{str(path)!r} is not a valid users file: {exc}") from None
        n, d = len(ids), config.output_dim
        if ids.ndim != 1 or W.shape != (n, d) or b.shape != (n,):
            raise FeatureError(
                f"{str(path)!r}: expected user_ids (n,), W (n, {d}), b (n,), "
                f"got {ids.shape}, {W.shape}, {b.shape}"
            )
        W = W.astype(np.float32)
        users = {str(u): (W[i], float(b[i])) for i, u in enumerate(ids.tolist())}
        return cls(net, encoder, version=meta["version"], device=dev, metrics=metrics, user_weights=users, meta=meta)

    def __repr__(self) -> str:
        return (
            f"FeatureModel(version={self.version!r}, device={str(self.device)!r}, "
            f"output_dim={self.output_dim}, users={len(self.user_weights)})"
        )


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeatureError(f"artifact file {str(path)!r} is not valid JSON: {exc}") from None
