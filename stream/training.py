"""The one training path of the feature net: records in, a registered (and maybe live) version out.

``eddy train``, ``eddy retrain`` and ``eddy demo`` all go through here, so
every version carries the same registry entry: the held-out metric
(``metrics.val_rmse`` on the last ``val_fraction`` of the time-ordered
examples), the training data range and what caused the (re)train.

1. records: :func:`read_records` (a JSONL or Parquet file) or
   :func:`records_from_log` (the workers' joined outcomes), time-ordered
   ``{"user_id", "context", "item": {"id", "features"}, "reward", "ts"}``;
2. :func:`train`: the feature net and offline user weights;
3. :func:`register`, then :func:`promote`: the registry entry, the live
   pointer, and the ``model-updates`` record that makes workers hot-swap.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from stream.config import ConfigError, Settings

__all__ = ["TrainOptions", "data_range", "read_records", "records_from_log", "train", "register", "promote",
           "publish_swap"]


@dataclass(frozen=True)
class TrainOptions:
    """How to train (the flags of ``eddy train`` / ``eddy retrain``); :meth:`check` names a bad value."""

    epochs: int = 3
    batch_size: int = 1024
    lr: float = 1e-2
    output_dim: int = 16
    val_fraction: float = 0.1
    device: str | None = None
    progress: bool = True
    min_examples: int = 20
    kind: str = "mlp"
    item_text: str | None = None

    def check(self) -> TrainOptions:
        from features.config import KINDS

        if self.kind not in KINDS:
            raise ConfigError(f"--kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "text" and not self.item_text:
            raise ConfigError("--kind text needs --item-text FIELD, the items' text field")
        for name in ("epochs", "batch_size", "output_dim", "min_examples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction!r}")
        return self


def data_range(records: list[dict]) -> dict[str, Any]:
    """First and last ``ts`` of the records (None when they carry none) and their count.

    >>> data_range([{"ts": 3.0}, {"ts": 1.0}, {}])
    {'from_ts': 1.0, 'to_ts': 3.0, 'n_examples': 3}
    """
    ts = [float(r["ts"]) for r in records if isinstance(r.get("ts"), (int, float))]
    return {"from_ts": min(ts) if ts else None, "to_ts": max(ts) if ts else None, "n_examples": len(records)}


def read_records(path: str) -> list[dict]:
    """Training records from a JSONL or Parquet file (``context`` and ``item`` may be JSON strings in Parquet)."""
    if path.endswith(".parquet"):
        import pandas as pd

        rows = pd.read_parquet(path).to_dict("records")
        for r in rows:
            for k in ("context", "item"):
                if isinstance(r.get(k), str):
                    r[k] = json.loads(r[k])
        return rows
    rows = []
    try:
        with open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as exc:
                        raise ConfigError(f"{path}:{lineno}: not JSON ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"--from-file {path!r}: {exc.strerror}") from None
    return rows


def records_from_log(settings: Settings, since_minutes: float | None, *,
                     progress: bool = True) -> tuple[list[dict], dict[str, Any]]:
    """The joined outcomes the workers logged (the last ``since_minutes``, or all): training records, and their source."""
    from stream import events
    from stream.logread import Slice, read_slice

    rows, first, last = [], None, None
    topic = settings.topic("outcomes")
    for _, _, ts, value in read_slice(settings, topic, Slice.last_minutes(since_minutes), progress=progress):
        o = events.decode_outcome(value)
        item = next(c for c in o.decision.candidates if c.id == o.item_id)
        rows.append({"user_id": o.decision.user_id, "context": o.decision.context, "item": item.to_dict(),
                     "reward": o.reward, "ts": o.decision.ts})
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
    rows.sort(key=lambda r: r["ts"])
    return rows, {"source": "log", "topic": topic, "from_ts": first, "to_ts": last}


def train(records: list[dict], opts: TrainOptions, *, version: str, seed: int = 0, config=None):
    """A :class:`~features.model.FeatureModel` trained on time-ordered ``records``.

    The net's fields are inferred from the training part only (``config`` overrides),
    so the held-out tail stays unseen.
    """
    from features.config import FeatureNetConfig
    from features.train import examples_from_records, train_feature_net

    if len(records) < opts.min_examples:
        raise ConfigError(f"only {len(records)} training examples; need at least {opts.min_examples}")
    examples = examples_from_records(records)
    n_train = len(examples) - int(len(examples) * opts.val_fraction)
    kind = {"kind": "text", "item_text": opts.item_text} if opts.kind == "text" else {}
    cfg = config or FeatureNetConfig.infer(examples[:n_train], output_dim=opts.output_dim, **kind)
    model = train_feature_net(examples, cfg, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                              val_fraction=opts.val_fraction, seed=seed, device=opts.device,
                              progress=opts.progress, version=version)
    model.meta["data_range"] = data_range(records)
    return model


def register(registry, model, meta: dict[str, Any]) -> str:
    """Register ``model`` with its data range, held-out metric and ``meta``; returns its version."""
    registry.register(model, {"data_range": model.meta.get("data_range"), **meta})
    m = model.metrics
    held_out = m.get("val_rmse")
    baseline = m.get("baseline_val_rmse")
    print(f"registered {model.version}: held-out val_rmse={'n/a' if held_out is None else f'{held_out:.4f}'} "
          f"(baseline {'n/a' if baseline is None else f'{baseline:.4f}'}) on {m.get('n_train')} examples, "
          f"{m.get('device')}, {m.get('seconds', 0):.1f}s", file=sys.stderr, flush=True)
    return model.version


def promote(settings: Settings, registry, version: str) -> str | None:
    """Make ``version`` live and tell the workers; returns the version it replaced."""
    old = registry.promote(version)
    publish_swap(settings, old, version)
    print(f"promoted {version} (was {old or 'none'}): live workers hot-swap within ~1 s", file=sys.stderr, flush=True)
    return old


def publish_swap(settings: Settings, old: str | None, new: str) -> None:
    """Tell subscribers of ``model-updates`` which feature net is now live."""
    from confluent_kafka import Producer

    from stream import events
    from stream.kafka_io import ensure_topics

    ensure_topics(settings, ("model-updates",))
    update = events.ModelUpdate(kind="feature_net", feature_net_version=new, version=new, user_id=None,
                                request_id=None, summary={"replaced": old or ""}, ts=time.time())
    producer = Producer(settings.producer_config())
    producer.produce(settings.topic("model-updates"), key=b"feature_net", value=events.encode(update))
    producer.flush(10)
