"""Eddy's feature net ``f(x, item; theta)``: config, encoder, net, training, artifacts.

Pure computation (torch, numpy): no Kafka, Redis or asyncio here. Names are
imported lazily, so importing ``features.errors`` (the project's base
exception, used everywhere) does not load torch.
"""

from importlib import import_module

_EXPORTS = {
    "EddyError": "features.errors",
    "FeatureError": "features.errors",
    "FeatureNetConfig": "features.config",
    "EncodedBatch": "features.encoder",
    "FeatureEncoder": "features.encoder",
    "FeatureModel": "features.model",
    "FeatureNet": "features.net",
    "limit_threads": "features.model",
    "resolve_device": "features.net",
    "examples_from_records": "features.train",
    "train_feature_net": "features.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'features' has no attribute {name!r}")
    return getattr(import_module(module), name)
