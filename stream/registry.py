"""Model registry: feature-net artifacts as files, their index and the live pointer in Redis.

Files: ``<model_dir>/<version>/`` as written by ``FeatureModel.save``.
Redis (under the deployment prefix): ``registry:versions`` (hash version ->
metadata JSON), ``registry:live`` (the one live version) and
``registry:history`` (previously live versions, newest first, for rollback) and
``registry:challengers`` (the versions served beside the live one, when set at runtime).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from typing import TYPE_CHECKING

import redis

from features.errors import EddyError
from features.model import FeatureModel

from stream.errors import redis_failure

if TYPE_CHECKING:
    from stream.keys import Keys


class RegistryError(EddyError, ValueError):
    """Unknown version, missing artifact, or nothing to roll back to."""


class Registry:
    """Built by :func:`stream.store.open_registry` (or :meth:`stream.store.RedisStore.registry`), never from a bare client."""

    def __init__(self, client: redis.Redis, keys: Keys, model_dir: str | Path):
        self._r = client
        self._keys = keys
        self.model_dir = Path(model_dir)

    def _k(self, name: str) -> str:
        return self._keys.registry(name)

    def next_version(self) -> str:
        while True:  # skip labels registered directly (e.g. a model saved as "v1" elsewhere)
            version = f"v{self._r.incr(self._k('counter'))}"
            if not self._r.hexists(self._k("versions"), version):
                return version

    def path(self, version: str) -> Path:
        return self.model_dir / version

    def register(self, model: FeatureModel, meta: dict | None = None) -> str:
        """Save ``model`` under its version and index it. Returns the version."""
        path = self.path(model.version)
        model.save(path)
        entry = {
            "version": model.version,
            "path": str(path),
            "created_at": time.time(),
            "metrics": model.metrics,
            "feature_net": {"kind": model.kind, "item_text": model.config.item_text},
            **(meta or {}),
        }
        self._r.hset(self._k("versions"), model.version, json.dumps(entry))
        return model.version

    def versions(self) -> list[dict]:
        raw = self._r.hgetall(self._k("versions"))
        entries = [json.loads(v) for v in raw.values()]
        return sorted(entries, key=lambda e: e.get("created_at", 0))

    def show(self, version: str) -> dict:
        raw = self._r.hget(self._k("versions"), version)
        if raw is None:
            known = ", ".join(e["version"] for e in self.versions()) or "none"
            raise RegistryError(f"unknown model version {version!r} (known: {known})")
        return json.loads(raw)

    def live(self) -> str | None:
        try:
            v = self._r.get(self._k("live"))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise redis_failure(exc) from None
        return v.decode() if v else None

    def promote(self, version: str) -> str | None:
        """Make ``version`` live; returns the version it replaced."""
        entry = self.show(version)
        if not Path(entry["path"]).exists():
            raise RegistryError(f"artifact of {version!r} is missing at {entry['path']}")
        previous = self.live()
        if previous == version:
            return previous
        pipe = self._r.pipeline(transaction=True)
        if previous:
            pipe.lpush(self._k("history"), previous)
        pipe.set(self._k("live"), version)
        pipe.execute()
        return previous

    def rollback(self) -> tuple[str, str]:
        """Make the previously live version live again; returns (from, to)."""
        current = self.live()
        previous = self._r.lpop(self._k("history"))
        if previous is None:
            raise RegistryError("nothing to roll back to: no version was live before the current one")
        previous = previous.decode()
        self._r.set(self._k("live"), previous)
        return current or "", previous

    def set_challengers(self, spec: str, selection: str | None = None) -> None:
        """The versions every worker serves beside the live one from now on (``v2,v3``, ``last:K`` or ``""``
        for none) and, optionally, how (``shadow``, ``exp3``, ``exp4``; None: each worker's setting).
        Workers read it within a second (:class:`stream.challengers.ChallengerWatcher`)."""
        self._r.set(self._k("challengers"), json.dumps({"spec": spec, "selection": selection}))

    def challengers(self) -> dict | None:
        """``{"spec": ..., "selection": ...}`` as last set, or None when never set (then each worker serves
        its ``challengers`` setting)."""
        try:
            raw = self._r.get(self._k("challengers"))
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise redis_failure(exc) from None
        return json.loads(raw) if raw else None

    def load(self, version: str, device: str | None = None) -> FeatureModel:
        entry = self.show(version)
        return FeatureModel.load(Path(entry["path"]), device=device)
