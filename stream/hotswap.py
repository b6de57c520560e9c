"""Hot swap: notice a newer version of what a worker serves, load it off the loop, install it between batches.

:class:`Watcher` is the mechanism, for anything that is published as versions: the
feature net (:class:`ModelWatcher`, here) and the learner role's policy
(:class:`stream.policy_swap.PolicyWatcher`).

With a feature cache the model loader thread also warms the new version's cache from the live one's most
recent inputs (taken on the loop thread when the load starts), so the new version serves its first
batches from a warm cache of its own: the versions' caches never mix (features/cache.py)."""

from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass
from functools import partial
from typing import Callable, Generic, TypeVar

from features.cache import FeatureCache, FeatureCaches
from features.model import FeatureModel
from stream.registry import Registry
from stream.errors import StoreUnavailable

log = logging.getLogger("eddy.worker")

T = TypeVar("T")


class Watcher(Generic[T]):
    """Every ``check_every_s`` asks, on the loop thread, whether a newer version is out (:meth:`_poll`, one
    cheap Redis read); loads it on its own thread; :meth:`ready` hands it over once loaded.

    A load that fails is logged and counted in ``failed`` and what is served stays: a broken artifact
    must not stop serving. A poll that meets a Redis outage is skipped: the worker's own Redis calls
    report the outage.
    """

    what = "a new version"  # how the log names what failed to load

    def __init__(self, *, check_every_s: float, thread_name: str):
        self._every = check_every_s
        self._next = 0.0
        self._loader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._pending: concurrent.futures.Future | None = None
        self.failed = 0

    def _poll(self) -> Callable[[], T] | None:
        """On the loop thread: the load to run off it when a newer version is out, else None."""
        raise NotImplementedError

    def ready(self, now: float) -> T | None:
        """A newer version, loaded and ready to install, or None."""
        if self._pending is not None and self._pending.done():
            fut, self._pending = self._pending, None
            try:
                return fut.result()
            except Exception as exc:  # whatever broke the load, the served version stays
                log.error("could not load %s: %s", self.what, exc)
                self.failed += 1
        if now >= self._next and self._pending is None:
            self._next = now + self._every
            try:
                load = self._poll()
            except StoreUnavailable:
                return None
            if load is not None:
                self._pending = self._loader.submit(load)
        return None

    def close(self) -> None:
        self._loader.shutdown(wait=False)


@dataclass(frozen=True)
class Loaded:
    """A promoted model, loaded, and its warmed feature cache (None without caching)."""

    model: FeatureModel
    feature_cache: FeatureCache | None = None


class ModelWatcher(Watcher[Loaded]):
    """Watches the registry's live pointer; a promoted feature net is loaded (and its cache warmed) in a thread."""

    what = "the promoted feature net"

    def __init__(self, registry: Registry, serving: Callable[[], str], *, check_every_s: float = 1.0,
                 feature_caches: FeatureCaches | None = None):
        super().__init__(check_every_s=check_every_s, thread_name="eddy-model-loader")
        self._registry = registry
        self._caches = feature_caches
        self._serving = serving

    def _poll(self) -> Callable[[], Loaded] | None:
        live = self._registry.live()
        if not live or live == self._serving():
            return None
        sources = self._caches.warm_sources() if self._caches is not None else []
        return partial(self._load, live, sources)

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
