"""The one feature net every system serves, trained on the simulator at the start of a run."""

from __future__ import annotations

import time

from features.model import FeatureModel
from features.train import train_feature_net
from stream.simulator import SimulatedWorld

WORLD = {"n_users": 1000, "n_items": 200, "n_candidates": 10}


def world(seed: int) -> SimulatedWorld:
    return SimulatedWorld(seed=seed, **WORLD)


def train(*, seed: int, examples: int, epochs: int) -> tuple[FeatureModel, dict]:
    t0 = time.perf_counter()
    data = world(seed).training_examples(examples)
    model = train_feature_net(data, epochs=epochs, progress=False, version="bench1", seed=seed, device="cpu")
    info = {"examples": examples, "epochs": epochs, "output_dim": model.output_dim,
            "offline_users": len(model.user_weights), "config": model.config.to_dict(),
            "val_rmse": model.metrics.get("val_rmse"), "train_seconds": round(time.perf_counter() - t0, 2),
            "world": {**WORLD, "seed": seed}}
    return model, info
