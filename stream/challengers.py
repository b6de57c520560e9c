"""Which feature-net versions a worker serves beside the live one (model selection), from the registry.

At start, the ``challengers`` setting; at runtime, the registry's challengers record
(``eddy models challengers set v2,v3 [--selection exp3]``), which :class:`ChallengerWatcher`
reads every second: a changed set is loaded on a thread of its own and installed between
batches, like a hot swap. Once the record is set it wins over the setting, in every worker.
"""

from __future__ import annotations

import concurrent.futures
import logging
from dataclasses import dataclass
from typing import Callable

from features.model import FeatureModel
from stream.config import Settings
from stream.engine.selection import Selection
from stream.errors import StoreUnavailable
from stream.registry import Registry, RegistryError

log = logging.getLogger("eddy.worker")


def challenger_versions(registry: Registry, spec: str, live: str) -> list[str]:
    """``spec``: ``v2,v3`` (each must be registered) or ``last:K`` (the K newest registered versions other
    than ``live``). The live version itself is never a challenger."""
    spec = spec.strip()
    if spec.startswith("last:"):
        k = spec.split(":", 1)[1]
        if not k.isdigit() or int(k) < 1:
            raise RegistryError(f"last:K needs a whole number K >= 1, got {spec!r}")
        k = int(k)
        others = [e["version"] for e in registry.versions() if e["version"] != live]
        return others[-k:]
    versions = [v.strip() for v in spec.split(",") if v.strip() and v.strip() != live]
    for v in versions:
        registry.show(v)  # RegistryError naming the known versions
    return list(dict.fromkeys(versions))


def selection_from_settings(settings: Settings, registry: Registry, live: str) -> Selection | None:
    """The worker's :class:`Selection`, or None when ``challengers`` is empty (or names none but the live one)."""
    if not settings.challengers.strip():
        return None
    try:
        versions = challenger_versions(registry, settings.challengers, live)
    except RegistryError as exc:
        raise SystemExit(f"eddy worker: challengers={settings.challengers!r}: {exc}") from None
    if not versions:
        return None
    return make_selection([registry.load(v) for v in versions], settings, settings.selection)


def make_selection(models: list[FeatureModel], settings: Settings, mode: str) -> Selection:
    return Selection(models, mode=mode, eta=settings.selection_eta, gamma=settings.selection_gamma,
                     loss_scale=settings.selection_loss_scale)


@dataclass(frozen=True)
class Change:
    """A new set of challengers to serve (``selection`` None: the live version alone)."""

    selection: Selection | None
    versions: tuple[str, ...]
    mode: str


class ChallengerWatcher:
    """Polls the registry's challengers record every ``check_every_s``; a changed set is loaded on a thread.

    ``serving()`` gives what the engine serves now: ``(live version, its Selection or None)``."""

    def __init__(self, registry: Registry, settings: Settings,
                 serving: Callable[[], tuple[str, Selection | None]], *, check_every_s: float = 1.0):
        self._registry = registry
        self._settings = settings
        self._serving = serving
        self._every = check_every_s
        self._next = 0.0
        self._loader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="eddy-challengers")
        self._pending: concurrent.futures.Future | None = None
        self._loading: tuple = ((), None)
        self._failed: tuple | None = None  # a set that could not be loaded is not retried until the record changes
        self.failed = 0

    def ready(self, now: float) -> Change | None:
        """A changed set of challengers, loaded and ready to install, or None."""
        if self._pending is not None and self._pending.done():
            fut, self._pending = self._pending, None
            try:
                return fut.result()
            except Exception as exc:  # a broken artifact must not stop serving the current set
                log.error("could not load the challengers %s: %s", ",".join(self._loading[0]), exc)
                self.failed += 1
                self._failed = self._loading
        if now < self._next or self._pending is not None:
            return None
        self._next = now + self._every
        try:
            record = self._registry.challengers()
            if record is None:
                return None  # never set: the worker's own setting stands
            live, current = self._serving()
            versions = tuple(challenger_versions(self._registry, record.get("spec") or "", live))
        except StoreUnavailable:
            return None  # the worker's own Redis calls report the outage
        except (RegistryError, ValueError) as exc:
            if self._failed != ("bad", record.get("spec")):
                log.error("challengers %r: %s", record.get("spec"), exc)
                self._failed = ("bad", record.get("spec"))
            return None
        mode = record.get("selection") or self._settings.selection
        served = (tuple(current.challengers), current.mode) if current is not None else ((), None)
        wanted = (versions, mode if versions else None)
        if wanted == served or wanted == self._failed:
            return None
        have = dict(current.challengers) if current is not None else {}
        self._loading = wanted
        self._pending = self._loader.submit(self._load, versions, mode, have)
        return None

    def _load(self, versions: tuple[str, ...], mode: str, have: dict[str, FeatureModel]) -> Change:
        if not versions:
            return Change(None, (), mode)
        models = [have.get(v) or self._registry.load(v) for v in versions]
        return Change(make_selection(models, self._settings, mode), versions, mode)

    def close(self) -> None:
        self._loader.shutdown(wait=False)
