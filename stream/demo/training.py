"""Train a feature net on records, register it with its provenance, and optionally promote it.

Shared by ``eddy retrain`` and ``eddy demo`` so every version they make carries
the same registry entry: the held-out metrics (``metrics.val_rmse`` on the
last ``val_fraction`` of the time-ordered examples), the training data range
and what caused the (re)train.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from stream.config import ConfigError, Settings


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 3
    batch_size: int = 1024
    lr: float = 1e-2
    output_dim: int = 16
    val_fraction: float = 0.1
    device: str | None = None
    progress: bool = True
    min_examples: int = 20

    def check(self) -> "TrainOptions":
        for name in ("epochs", "batch_size", "output_dim", "min_examples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ConfigError(f"--lr must be > 0, got {self.lr!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction!r}")
        return self


def data_range(records: list[dict]) -> dict[str, Any]:
    """First and last ``ts`` of the records (None when they carry none) and their count."""
    ts = [float(r["ts"]) for r in records if isinstance(r.get("ts"), (int, float))]
    return {"from_ts": min(ts) if ts else None, "to_ts": max(ts) if ts else None, "n_examples": len(records)}


def train(records: list[dict], opts: TrainOptions, *, version: str, seed: int = 0, config=None):
    """A :class:`~features.model.FeatureModel` trained on time-ordered ``records``."""
    from features.config import FeatureNetConfig
    from features.train import examples_from_records, train_feature_net

    if len(records) < opts.min_examples:
        raise ConfigError(f"only {len(records)} training examples; need at least {opts.min_examples}")
    examples = examples_from_records(records)
    n_train = len(examples) - int(len(examples) * opts.val_fraction)
    cfg = config or FeatureNetConfig.infer(examples[:n_train], output_dim=opts.output_dim)
    model = train_feature_net(examples, cfg, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr,
                              val_fraction=opts.val_fraction, seed=seed, device=opts.device,
                              progress=opts.progress, version=version)
    model.meta["data_range"] = data_range(records)
    return model


def register(settings: Settings, registry, model, meta: dict[str, Any], *, promote: bool) -> str | None:
    """Register ``model`` (its data range and held-out metric included); promote it if asked.

    Returns the version it replaced when promoted, else None.
    """
    entry = {"data_range": model.meta.get("data_range"), **meta}
    registry.register(model, entry)
    m = model.metrics
    held_out = m.get("val_rmse")
    print(f"registered {model.version}: held-out val_rmse="
          f"{'n/a' if held_out is None else f'{held_out:.4f}'} "
          f"(baseline {m.get('baseline_val_rmse') or float('nan'):.4f}) on {m.get('n_train')} examples, "
          f"{m.get('device')}, {m.get('seconds', 0):.1f}s", file=sys.stderr, flush=True)
    if not promote:
        return None
    from stream.commands.models_cmd import publish_swap

    old = registry.promote(model.version)
    publish_swap(settings, old, model.version)
    print(f"promoted {model.version} (was {old or 'none'}): live workers hot-swap within ~1 s",
          file=sys.stderr, flush=True)
    return old
