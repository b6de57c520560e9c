"""Hot swap of the feature net: notice a promotion, load it off the loop, install it between batches."""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Callable

from features.model import FeatureModel
from stream.registry import Registry
from stream.errors import StoreUnavailable

log = logging.getLogger("eddy.worker")


class ModelWatcher:
    """Polls the registry's live pointer every ``check_every_s``; loading happens in a thread."""

    def __init__(self, registry: Registry, serving: Callable[[], str], *, check_every_s: float = 1.0):
        self._registry = registry
        self._serving = serving
        self._every = check_every_s
        self._next = 0.0
        self._loader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="eddy-model-loader")
        self._pending: concurrent.futures.Future | None = None
        self.failed = 0

    def ready(self, now: float) -> FeatureModel | None:
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
                self._pending = self._loader.submit(self._registry.load, live)
        return None

    def close(self) -> None:
        self._loader.shutdown(wait=False)
