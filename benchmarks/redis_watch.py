"""What Redis did while one system ran: its fsync policy, and the stalls its latency monitor saw.

Redis's own latency monitor (``LATENCY HISTORY``) records, per second, the longest
event of each kind above a threshold: ``aof-fsync-always`` (the fsync before a reply
under ``appendfsync always``), ``aof-write``, ``fork``, ``command``... A stall there
holds every client, so a query answered in that second waits for it. The report puts
these next to the system's p99 so a tail can be traced to its cause, and, from each event's
timestamp, next to the load step it fell in (:meth:`RedisWatch.stalls`): a step's p99 of
150 ms beside a 166 ms Redis command in the same seconds is Redis's stall (or the machine's,
seen by Redis), not the worker's work.

Redis's AOF rewrites are watched too (:class:`RewriteWatch`): the rewrite runs in a forked child that
takes most of a core for about a second per 70 MB of data on this 2-core machine, beside the broker,
the worker and the load generator, and a step it falls in shows it (a burst of slow answers in
that step's timeline, not a stall the latency monitor records).

A system may ask for another fsync policy (``System.redis_appendfsync``): it is set
with ``CONFIG SET`` for its run and restored after, so two systems compare the policies
side by side in one run against one Redis.
"""

from __future__ import annotations

import threading
import time

import redis

from benchmarks.systems import BenchError

THRESHOLD_MS = 10  # the latency monitor's threshold while a system runs
REWRITE_POLL_S = 0.2  # how often INFO persistence is read: the rewrites' start and end to 0.2 s


def overlapping(intervals: list[tuple[float, float]], t0: float, t1: float) -> list[list[float]]:
    """The ``(start, end)`` unix-time intervals that overlap ``[t0, t1]``, as ``[start - t0, seconds]``
    (an interval still open at the end of the watch has ``end`` = that end).

    >>> overlapping([(90.0, 91.0), (99.5, 100.7), (104.0, 105.2), (120.0, 121.0)], 100.0, 110.0)
    [[-0.5, 1.2], [4.0, 1.2]]
    """
    return [[round(a - t0, 1), round(b - a, 1)] for a, b in intervals if b >= t0 and a <= t1]


class RewriteWatch:
    """When Redis rewrote its AOF while a system ran: a thread reads ``INFO persistence`` every
    :data:`REWRITE_POLL_S` and keeps each ``aof_rewrite_in_progress`` span; a rewrite that began and
    ended between two readings (``aof_rewrites`` went up) spans those readings. ``start()``, the run,
    ``stop()``, then :attr:`intervals` (unix times). A Redis that refuses INFO leaves them empty
    and :attr:`error` set."""

    def __init__(self, client: redis.Redis, *, poll_s: float = REWRITE_POLL_S):
        self.client = client
        self.poll_s = poll_s
        self.intervals: list[tuple[float, float]] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bench-aof-rewrites", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        began = last = None
        done = 0
        stopping = False
        while True:
            try:
                info = self.client.info("persistence")
            except redis.RedisError as exc:
                self.error = f"could not read INFO persistence ({exc})"
                return
            now = time.time()
            busy = int(info.get("aof_rewrite_in_progress", 0)) == 1
            count = int(info.get("aof_rewrites", 0))  # rewrites started since Redis started
            if last is not None and count > done and began is None and not busy:
                self.intervals.append((last, now))  # began and ended between two readings: within them
            if busy and began is None:
                began = now
            elif not busy and began is not None:
                self.intervals.append((began, now))
                began = None
            done, last = count, now
            if stopping:  # read once more after stop(): a rewrite that ended since the last reading counts
                if began is not None:
                    self.intervals.append((began, now))
                return
            stopping = self._stop.wait(self.poll_s)


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
        self._rewrites = RewriteWatch(client)

    def start(self) -> None:
        self._rewrites.start()  # INFO, not CONFIG: a Redis that refuses CONFIG may still answer it
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
        self._rewrites.stop()
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

    def rewrites(self, t0: float, t1: float) -> list[list[float]]:
        """The AOF rewrites that overlapped unix times ``t0`` to ``t1`` (after :meth:`stop`), each as
        ``[start - t0, seconds]`` (see :func:`overlapping`)."""
        return overlapping(self._rewrites.intervals, t0, t1)

    def report(self) -> dict:
        """``{"appendfsync": ..., "threshold_ms": ..., "events": {name: {seconds, max_ms, median_ms}},
        "aof_rewrites": {"count": ..., "seconds": ...}}``."""
        spans = self._rewrites.intervals
        out = {"appendfsync": self.policy, "threshold_ms": THRESHOLD_MS, "events": self._events,
               "aof_rewrites": {"count": len(spans), "seconds": round(sum(b - a for a, b in spans), 1)}}
        if self._rewrites.error:
            out["aof_rewrites"]["error"] = self._rewrites.error
        if self.error:
            out["error"] = self.error
        return out


def step_stalls(stalls: dict[str, int] | None, rewrites: list[list[float]] | None = None) -> str:
    """A step's cell: the longest Redis stall in it and its kind (``-``: none; empty: not recorded), then
    the AOF rewrites that overlapped it and their seconds (none: nothing added).

    >>> step_stalls({"fork": 20, "command": 12}, [[0.7, 1.0], [9.2, 0.9]])
    '20 (fork); AOF rewrite 1.0 + 0.9 s'
    >>> step_stalls({}, [])
    '-'
    """
    if stalls is None:
        cell = ""
    elif not stalls:
        cell = "-"
    else:
        name, ms = max(stalls.items(), key=lambda kv: kv[1])
        cell = f"{ms} ({name})"
    if rewrites:
        cell += f"; AOF rewrite {rewrite_seconds(rewrites)}"
    return cell


def rewrite_seconds(rewrites: list[list[float]]) -> str:
    """How long each of a step's AOF rewrites ran (:meth:`RedisWatch.rewrites`).

    >>> rewrite_seconds([[0.7, 1.0], [9.2, 0.9]])
    '1.0 + 0.9 s'
    """
    return " + ".join(f"{seconds:.1f}" for _, seconds in rewrites) + " s"


def describe(watch: dict | None) -> str:
    """One line for the report: the policy and each kind of stall (seconds with one, longest)."""
    if not watch:
        return ""
    if watch.get("error"):
        return f"Redis: {watch['error']}."
    events = watch.get("events") or {}
    stalls = ", ".join(f"`{name}` in {e['seconds']} s (longest {e['max_ms']} ms, median {e['median_ms']} ms)"
                       for name, e in sorted(events.items(), key=lambda kv: -kv[1]["max_ms"]))
    line = (f"Redis `appendfsync {watch['appendfsync']}`; stalls of {watch['threshold_ms']} ms or more seen by its "
            f"latency monitor while this system ran: {stalls or 'none'}.")
    rewrites = watch.get("aof_rewrites")
    if rewrites and rewrites.get("error"):
        line += f" AOF rewrites not watched: {rewrites['error']}."
    elif rewrites:
        line += f" AOF rewrites while it ran: {rewrites['count']} ({rewrites['seconds']:g} s in all)."
    return line
