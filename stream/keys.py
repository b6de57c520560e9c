"""Every Redis key Eddy uses, named in one place (the store and the registry build keys only here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Every key name, in one place."""

    prefix: str

    def _k(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    def user(self, fn: str, user: str) -> str:
        return self._k("user", fn, user)

    def users(self, fn: str, partition: int) -> str:
        return self._k("users", fn, partition)

    def decision(self, request_id: str) -> str:
        return self._k("decision", request_id)

    def applied(self, request_id: str) -> str:
        return self._k("applied", request_id)

    def population(self, fn: str, partition: int) -> str:
        return self._k("pop", fn, partition)

    def policy(self, group: str, name: str) -> str:
        return self._k("policy", group, name)

    def epoch(self, group: str, partition: int) -> str:
        return self._k("epoch", group, partition)

    def stats(self, group: str, instance: str) -> str:
        return self._k("stats", group, instance)

    def process_stats(self, group: str, instance: str) -> str:
        return self._k("procstats", group, instance)

    def registry(self, name: str) -> str:
        return self._k("registry", name)
