"""What Redis did while one system ran: its fsync policy, and the stalls its latency monitor saw.

Redis's own latency monitor (``LATENCY HISTORY``) records, per second, the longest
event of each kind above a threshold: ``aof-fsync-always`` (the fsync before a reply
under ``appendfsync always``), ``aof-write``, ``fork``, ``command``... A stall there
holds every client, so a query answered in that second waits for it. The report puts
these next to the system's p99 so a tail can be traced to its cause, and, from each event's
timestamp, next to the load step it fell in (:meth:`RedisWatch.stalls`): a step's p99 of
150 ms beside a 166 ms Redis command in the same seconds is Redis's stall (or the machine's,
seen by Redis), not the worker's work.

A system may ask for another fsync policy (``System.redis_appendfsync``): it is set
with ``CONFIG SET`` for its run and restored after, so two systems compare the policies
side by side in one run against one Redis.
"""

from __future__ import annotations

import redis

from benchmarks.systems import BenchError

THRESHOLD_MS = 10  # the latency monitor's threshold while a system runs


class RedisWatch:
    """``w = RedisWatch(client, appendfsync="always"); w.start()``, the run, ``w.stop()``, then ``w.report()``."""

    def __init__(self, client: redis.Redis, *, appendfsync: str | None = None):
        self.client = client
        self.appendfsync = appendfsync
        self._restore: dict[str, str] = {}
        self.policy: str | None = None
        self.error: str | None = None
        self._events: dict[str, dict] = {}
        self._history: dict[str, list[tuple[int, int]]] = {}  # event -> [(unix second, longest ms that second)]

    def start(self) -> None:
        try:
            old = {k: self.client.config_get(k)[k] for k in ("appendfsync", "latency-monitor-threshold")}
            if self.appendfsync is not None and old["appendfsync"] != self.appendfsync:
                self._restore["appendfsync"] = old["appendfsync"]
                self.client.config_set("appendfsync", self.appendfsync)
            self._restore["latency-monitor-threshold"] = old["latency-monitor-threshold"]
            self.client.config_set("latency-monitor-threshold", THRESHOLD_MS)
            self.client.execute_command("LATENCY", "RESET")
            self.policy = self.client.config_get("appendfsync")["appendfsync"]
        except (redis.RedisError, KeyError) as exc:  # a managed Redis may refuse CONFIG: run, say so
            self.error = f"Redis refused CONFIG/LATENCY ({exc}); stalls not recorded"
            if self.appendfsync is not None:  # the comparison this system exists for cannot run
                raise BenchError(f"this system needs appendfsync {self.appendfsync}: {self.error}") from None

    def stop(self) -> None:
        if self.error is None:
            try:
                for row in self.client.execute_command("LATENCY", "LATEST"):
                    name = row[0].decode() if isinstance(row[0], bytes) else str(row[0])
                    history = self.client.execute_command("LATENCY", "HISTORY", name)
                    self._history[name] = [(int(h[0]), int(h[1])) for h in history]
                    ms = sorted(int(h[1]) for h in history)
                    self._events[name] = {"seconds": len(ms), "max_ms": ms[-1] if ms else 0,
                                          "median_ms": ms[len(ms) // 2] if ms else 0}
            except redis.RedisError as exc:
                self.error = f"could not read Redis's latency monitor ({exc})"
        for key, value in self._restore.items():
            try:
                self.client.config_set(key, value)
            except redis.RedisError:
                pass

    def stalls(self, t0: float, t1: float) -> dict[str, int]:
        """The longest stall of each kind Redis saw between unix times ``t0`` and ``t1`` (after :meth:`stop`).

        The monitor keeps one entry per second (its longest), so a stall in the second a step
        starts or ends is counted in the steps on both sides of that second.
        """
        lo, hi = int(t0), int(t1)
        out: dict[str, int] = {}
        for name, history in self._history.items():
            inside = [ms for ts, ms in history if lo <= ts <= hi]
            if inside:
                out[name] = max(inside)
        return out

    def report(self) -> dict:
        """``{"appendfsync": ..., "threshold_ms": ..., "events": {name: {seconds, max_ms, median_ms}}}``."""
        out = {"appendfsync": self.policy, "threshold_ms": THRESHOLD_MS, "events": self._events}
        if self.error:
            out["error"] = self.error
        return out


def step_stalls(stalls: dict[str, int] | None) -> str:
    """A step's cell: the longest Redis stall in it and its kind (``-``: none; empty: not recorded)."""
    if stalls is None:
        return ""
    if not stalls:
        return "-"
    name, ms = max(stalls.items(), key=lambda kv: kv[1])
    return f"{ms} ({name})"


def describe(watch: dict | None) -> str:
    """One line for the report: the policy and each kind of stall (seconds with one, longest)."""
    if not watch:
        return ""
    if watch.get("error"):
        return f"Redis: {watch['error']}."
    events = watch.get("events") or {}
    stalls = ", ".join(f"`{name}` in {e['seconds']} s (longest {e['max_ms']} ms, median {e['median_ms']} ms)"
                       for name, e in sorted(events.items(), key=lambda kv: -kv[1]["max_ms"]))
    return (f"Redis `appendfsync {watch['appendfsync']}`; stalls of {watch['threshold_ms']} ms or more seen by its "
            f"latency monitor while this system ran: {stalls or 'none'}.")
