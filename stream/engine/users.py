"""The worker's in-process view of per-user models: a bounded cache over the store.

Writes are write-through (a batch's new states go to Redis in the same
MULTI/EXEC as its markers, then into this cache), so evicting on revoke
loses nothing. New users start from the population prior: the offline
user weights' average, refined online by every user's feedback.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np

from learners import PopulationModel, UserModel, load_user_model, make_user_model


class UserCache:
    def __init__(self, *, kind: str, dim: int, capacity: int, base_prior: np.ndarray | None,
                 offline: dict[str, tuple[np.ndarray, float]] | None = None):
        self._kind = kind
        self._dim = dim
        self._capacity = capacity
        self._models: OrderedDict[str, UserModel] = OrderedDict()
        self._offline = offline or {}
        self.base_prior = base_prior
        self._prior = base_prior if base_prior is not None else np.zeros(dim + 1)
        self.lookups = 0  # users asked for by batches, and how many were in memory (the hit rate's terms)
        self.hits = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, user_id: str) -> bool:
        """Whether the user's model is in memory (not a lookup: the hit rate counts :meth:`get_many`'s)."""
        return user_id in self._models

    def set_prior(self, mean: np.ndarray) -> None:
        mean = np.asarray(mean, dtype=float)
        if np.array_equal(mean, self._prior):
            return  # no feedback since the last refresh: the users who follow the prior are current
        self._prior = mean
        # Users with no observation of their own follow the prior as it moves (rebuilt on next use);
        # those the feature net was trained on start from their offline weights, which do not move.
        for uid in [u for u, m in self._models.items() if m.n_obs == 0 and u not in self._offline]:
            del self._models[uid]

    def new_population(self) -> PopulationModel:
        """Empty population statistics around this version's base prior (so they merge)."""
        return PopulationModel(self._dim, prior_mean=self.base_prior)

    def fresh(self, user_id: str) -> UserModel:
        """A model for a user the store has never seen: offline weights if trained on, else the prior."""
        if user_id in self._offline:
            w, b = self._offline[user_id]
            prior = np.concatenate([np.asarray(w, dtype=float), [float(b)]])
        else:
            prior = self._prior
        return make_user_model(self._kind, self._dim, prior_mean=prior)

    def get_many(self, user_ids: list[str], load: Callable[[list[str]], dict[str, bytes]]) -> dict[str, UserModel]:
        out: dict[str, UserModel] = {}
        missing = []
        for u in user_ids:
            m = self._models.get(u)
            if m is None:
                missing.append(u)
            else:
                self._models.move_to_end(u)
                out[u] = m
        self.lookups += len(user_ids)
        self.hits += len(user_ids) - len(missing)
        if missing:
            stored = load(list(dict.fromkeys(missing)))
            for u in missing:
                if u in out:
                    continue
                data = stored.get(u)
                m = load_user_model(data) if data is not None else self.fresh(u)
                self.put(u, m)
                out[u] = m
        return out

    def warm(self, states: dict[str, bytes]) -> None:
        """Load stored users not in memory yet (not counted as lookups)."""
        for u, data in states.items():
            if u not in self._models:
                self.put(u, load_user_model(data))

    def put(self, user_id: str, model: UserModel) -> None:
        self._models[user_id] = model
        self._models.move_to_end(user_id)
        while len(self._models) > self._capacity:
            self._models.popitem(last=False)

    def discard(self, user_id: str) -> None:
        """Forget ``user_id``'s model (it learned something the store refused): read again on next use."""
        self._models.pop(user_id, None)

    def clear(self) -> None:
        self._models.clear()


def merged_population(blobs: list[bytes]) -> PopulationModel | None:
    if not blobs:
        return None
    total = PopulationModel.from_bytes(blobs[0])
    for b in blobs[1:]:
        total = total.merge(PopulationModel.from_bytes(b))
    return total if total.n_obs > 0 else None
