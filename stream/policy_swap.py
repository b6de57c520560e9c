"""Hot swap of the learner role's policy: notice a new snapshot, load it off the loop, install it between batches.

With ``policy_learner=role`` one ``eddy learner`` trains the learning policy (VW)
from the outcomes topic and publishes versioned snapshots to Redis
(:mod:`stream.learner`). Each worker polls the snapshot's version about once a
second (one ``HGET``), loads a newer one on a thread, and the worker installs it
between batches: the feature net's hot swap, :class:`stream.hotswap.Watcher`. Decisions made
with it carry its version (``policy_snapshot``).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from bandits import Policy
from stream.hotswap import Watcher
from stream.store import RedisStore


class PolicyWatcher(Watcher[tuple[Policy, int]]):
    """Watches ``learner_snapshot``'s version; ``ready`` returns ``(policy, version)`` once a newer one is loaded."""

    what = "the learner's policy snapshot"

    def __init__(self, store: RedisStore, group: str, policy: Policy, *, version: int = 0,
                 check_every_s: float = 1.0):
        super().__init__(check_every_s=check_every_s, thread_name="eddy-policy-loader")
        self._store = store
        self._group = group
        self._name = policy.name
        self._type = type(policy)
        self.version = version  # the newest version handed out (or being loaded)

    def load_now(self) -> tuple[Policy, int] | None:
        """The newest snapshot, loaded on the caller's thread (at start), or None if there is none."""
        load = self._poll()
        return None if load is None else load()

    def _poll(self) -> Callable[[], tuple[Policy, int]] | None:
        got = self._store.learner_snapshot(self._group, self._name, newer_than=self.version)
        if got is None:
            return None
        self.version = got[0]
        return partial(self._load, *got)

    def _load(self, version: int, blob: bytes) -> tuple[Policy, int]:
        return self._type.from_bytes(blob), version
