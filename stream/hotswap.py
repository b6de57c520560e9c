"""Hot swap of the feature net: notice a promotion, load it off the loop, install it between batches.

With a feature cache the loader thread also warms the new version's cache from the live one's most
recent inputs (taken on the loop thread when the load starts), so the new version serves its first
batches from a warm cache of its own: the versions' caches never mix (features/cache.py)."""

from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass
from typing import Callable

from features.cache import FeatureCache, FeatureCaches
from features.model import FeatureModel
from stream.registry import Registry
from stream.errors import StoreUnavailable

log = logging.getLogger("eddy.worker")


@dataclass(frozen=True)
class Loaded:
    """A promoted model, loaded, and its warmed feature cache (None without caching)."""

    model: FeatureModel
    feature_cache: FeatureCache | None = None


class ModelWatcher:
    """Polls the registry's live pointer every ``check_every_s``; loading (and warming) happens in a thread."""

    def __init__(self, registry: Registry, serving: Callable[[], str], *, check_every_s: float = 1.0,
                 feature_caches: FeatureCaches | None = None):
        self._registry = registry
        self._caches = feature_caches
        self._serving = serving
        self._every = check_every_s
        self._next = 0.0
        self._loader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="eddy-model-loader")
        self._pending: concurrent.futures.Future | None = None
        self.failed = 0

    def ready(self, now: float) -> Loaded | None:
        """A newly promoted model, loaded and ready to install, or None."""
        if self._pending is not None and self._pending.done():
            fut, self._pending = self._pending, None
            try:
                return fut.result()
            except Exception as exc:  # a broken artifact must not stop serving the current one
                log.error("could not load the promoted feature net: %s", exc)
                self.failed += 1
        if now >= self._next and self._pending is None:
            self._next = now + self._every
            try:
                live = self._registry.live()
            except StoreUnavailable:
                return None  # the worker's own Redis calls report the outage
            if live and live != self._serving():
                sources = self._caches.warm_sources() if self._caches is not None else []
                self._pending = self._loader.submit(self._load, live, sources)
        return None

    def _load(self, version: str, sources: list) -> Loaded:
        model = self._registry.load(version)
        if self._caches is None:
            return Loaded(model)
        try:
            cache = self._caches.warmed(model, sources)
        except Exception as exc:  # inputs the new version cannot read: it starts cold, not never
            log.warning("could not warm the feature cache of %s: %s", version, exc)
            cache = self._caches.new(version)
        return Loaded(model, cache)

    def close(self) -> None:
        self._loader.shutdown(wait=False)
