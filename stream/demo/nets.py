"""Feature nets of a given size, trained on demo records: the cheap and the expensive one that the demo's
cascade, anytime and selection arms serve, and that ``benchmarks/serving_load.py`` serves live.

* :data:`CHEAP`: linear (no hidden layer), ``d = 4``, one epoch: a fraction of the MLP's cost;
* :data:`EXPENSIVE`: an MLP with two hidden layers of 1024, ``d = 16``: tens of times the MLP's cost
  per row, so that a deadline or a cascade has something to save.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream import training

__all__ = ["CHEAP", "EXPENSIVE", "NetSpec", "train_net"]


@dataclass(frozen=True)
class NetSpec:
    version: str
    hidden: tuple[int, ...]
    output_dim: int
    epochs: int


CHEAP = NetSpec("cheap", (), 4, 1)
EXPENSIVE = NetSpec("wide", (1024, 1024), 16, 3)


def train_net(train: list[dict], spec: NetSpec, *, epochs: int | None = None, seed: int = 0, device: str = "cpu"):
    """A :class:`features.model.FeatureModel` of ``spec``'s shape trained on ``train`` (demo records);
    ``epochs`` overrides the spec's."""
    from features.config import FeatureNetConfig
    from features.train import examples_from_records

    examples = examples_from_records(train)
    cfg = FeatureNetConfig.infer(examples[: int(len(examples) * 0.9)], hidden=spec.hidden,
                                 output_dim=spec.output_dim)
    return training.train(train, training.TrainOptions(epochs=epochs or spec.epochs, progress=False, device=device),
                          version=spec.version, config=cfg, seed=seed)
