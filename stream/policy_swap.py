"""Hot swap of the learner role's policy: notice a new snapshot, load it off the loop, install it between batches.

With ``policy_learner=role`` one ``eddy learner`` trains the learning policy (VW)
from the outcomes topic and publishes versioned snapshots to Redis
(:mod:`stream.learner`). Each worker polls the snapshot's version about once a
second (one ``HGET``), loads a newer one on a thread, and the worker installs it
between batches, as :mod:`stream.hotswap` does for feature nets. Decisions made
with it carry its version (``policy_snapshot``).
"""

from __future__ import annotations

import concurrent.futures
import logging

from bandits import Policy
from stream.errors import StoreUnavailable
from stream.store import RedisStore

log = logging.getLogger("eddy.worker")


class PolicyWatcher:
    """Polls ``learner_snapshot`` every ``check_every_s``; ``ready`` returns ``(policy, version)`` once loaded."""

    def __init__(self, store: RedisStore, group: str, policy: Policy, *, version: int = 0,
                 check_every_s: float = 1.0):
        self._store = store
        self._group = group
        self._name = policy.name
        self._type = type(policy)
        self.version = version  # the newest version handed out (or being loaded)
        self._every = check_every_s
        self._next = 0.0
        self._loader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="eddy-policy-loader")
        self._pending: concurrent.futures.Future | None = None
        self.failed = 0

    def load_now(self) -> tuple[Policy, int] | None:
        """The newest snapshot, loaded on the caller's thread (at start), or None if there is none."""
        got = self._store.learner_snapshot(self._group, self._name, newer_than=self.version)
        if got is None:
            return None
        self.version = got[0]
        return self._load(*got)

    def ready(self, now: float) -> tuple[Policy, int] | None:
        if self._pending is not None and self._pending.done():
            fut, self._pending = self._pending, None
            try:
                return fut.result()
            except Exception as exc:  # a damaged snapshot must not stop serving the current policy
                log.error("could not load the learner's policy snapshot: %s", exc)
                self.failed += 1
        if now >= self._next and self._pending is None:
            self._next = now + self._every
            try:
                got = self._store.learner_snapshot(self._group, self._name, newer_than=self.version)
            except StoreUnavailable:
                return None  # the worker's own Redis calls report the outage
            if got is not None:
                self.version = got[0]
                self._pending = self._loader.submit(self._load, *got)
        return None

    def _load(self, version: int, blob: bytes) -> tuple[Policy, int]:
        return self._type.from_bytes(blob), version

    def close(self) -> None:
        self._loader.shutdown(wait=False)
