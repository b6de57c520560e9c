"""A simulated world of users with drifting tastes, for demos, tests and benchmarks.

Pure and seeded: no I/O. Each user has a latent taste vector that drifts a
little with every step; each item has a latent vector and a genre; the
reward for showing item i to user u is a Bernoulli click with probability
``sigmoid(scale * (u . v_i + genre bonus of the context's device))``.

>>> world = SimulatedWorld(n_users=3, n_items=5, seed=1)
>>> q = world.query(0, ts=100.0)
>>> q.user_id.startswith("u"), len(q.candidates)
(True, 5)
>>> 0.0 <= world.click_probability(q.user_id, q.candidates[0].id, q.context) <= 1.0
True
"""

from __future__ import annotations

import numpy as np

from stream.events import Feedback, Item, Query

DEVICES = ("mobile", "desktop", "tv")
GENRES = ("drama", "comedy", "action", "doc")


class SimulatedWorld:
    def __init__(self, n_users: int = 100, n_items: int = 50, *, dim: int = 4, n_candidates: int = 10,
                 drift: float = 0.002, scale: float = 3.0, seed: int = 0):
        for name, value in (("n_users", n_users), ("n_items", n_items), ("n_candidates", n_candidates), ("dim", dim)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        self.n_users, self.n_items, self.n_candidates = n_users, n_items, min(n_candidates, n_items)
        self.drift, self.scale = drift, scale
        self._rng = np.random.default_rng(seed)
        self._users = self._rng.normal(size=(n_users, dim)) / np.sqrt(dim)
        self._items = self._rng.normal(size=(n_items, dim)) / np.sqrt(dim)
        self._genre = self._rng.integers(len(GENRES), size=n_items)
        self._device_bonus = self._rng.normal(scale=0.5, size=(len(DEVICES), len(GENRES)))

    def user_id(self, u: int) -> str:
        return f"u{u}"

    def item(self, i: int) -> Item:
        return Item(f"i{i}", {"genre": GENRES[self._genre[i]], "popularity": float(np.round(self._items[i, 0], 3))})

    def query(self, n: int, ts: float, *, user: int | None = None, prefix: str = "r") -> Query:
        u = int(self._rng.integers(self.n_users)) if user is None else user
        items = self._rng.choice(self.n_items, size=self.n_candidates, replace=False)
        self._users[u] += self._rng.normal(scale=self.drift, size=self._users.shape[1])
        context = {"device": DEVICES[int(self._rng.integers(len(DEVICES)))], "hour": float(int(ts // 3600) % 24)}
        return Query(request_id=f"{prefix}{n}", user_id=self.user_id(u), ts=ts, context=context,
                     candidates=tuple(self.item(int(i)) for i in items), k=1)

    def click_probability(self, user_id: str, item_id: str, context: dict) -> float:
        u, i = int(user_id[1:]), int(item_id[1:])
        device = DEVICES.index(context["device"]) if context.get("device") in DEVICES else 0
        z = self._users[u] @ self._items[i] + self._device_bonus[device, self._genre[i]]
        return float(1.0 / (1.0 + np.exp(-self.scale * z)))

    def feedback(self, query: Query, item_id: str, ts: float) -> Feedback:
        p = self.click_probability(query.user_id, item_id, query.context)
        reward = float(self._rng.random() < p)
        return Feedback(request_id=query.request_id, user_id=query.user_id, item_id=item_id, reward=reward, ts=ts)

    def training_examples(self, n: int, *, ts0: float = 0.0) -> list[tuple[str, dict, dict, float]]:
        """``n`` logged examples with uniformly random shown items (for offline training)."""
        out = []
        for k in range(n):
            q = self.query(k, ts0 + k)
            item = q.candidates[int(self._rng.integers(len(q.candidates)))]
            fb = self.feedback(q, item.id, q.ts)
            out.append((q.user_id, dict(q.context), item.to_dict(), fb.reward))
        return out
