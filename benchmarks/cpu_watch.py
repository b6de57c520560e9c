"""Where the machine's cores go during a load step: each tenant's CPU, what is left idle, and steal.

On this machine the load generator, the system under test, the Kafka broker and Redis share
the cores, so a step's latency depends on all four. Read from ``/proc`` at the start and the
end of each step, their CPU-seconds over the step's wall-clock seconds give the cores each
used; the machine's own counters (``/proc/stat``) give the rest: ``other`` (busy, but none
of the four: the kernel's softirqs for the loopback network, the OS, the metrics threads of
other processes), ``idle``, and ``steal`` (time the hypervisor gave another guest, which no
tenant sees except as a slower clock). A step whose ``idle`` is near zero ran on a saturated
machine: any latency target past that rate needs a tenant to use less CPU, whoever does
the work (the report's *Where the machine's cores go*).

A process's figure counts its threads and its live child processes (a worker run with
``--processes 2``), but not another tenant's (the system under test is the generator's child).
The figures are read twice per step, so they cost nothing while it runs.

They are the kernel's, with its limits. A tickless kernel that accounts CPU time at its ticks
(``CONFIG_NO_HZ_IDLE`` with ``CONFIG_TICK_CPU_ACCOUNTING``, as here) measures idle time exactly but
samples busy time at each tick (4 ms at ``HZ=250``): when the cores wake for short bursts a few
hundred times a second, a burst that a tick lands in counts as a whole tick, and a step's figures
add up to more than the machine's cores (2.3-2.6 of 2 seen, at 250-500 queries/s; within 3% at
other rates). The report marks such a step.

>>> before = {"t": 10.0, "tenants": {"system": 3.0, "broker": 1.0}, "machine": {"busy": 100.0, "idle": 300.0, "steal": 0.0}}
>>> after = {"t": 12.0, "tenants": {"system": 4.5, "broker": 2.0}, "machine": {"busy": 103.0, "idle": 300.6, "steal": 0.4}}
>>> cores_used(before, after)
{'system': 0.75, 'broker': 0.5, 'other': 0.25, 'idle': 0.3, 'steal': 0.2}
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Collection, Mapping

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds a process (all its threads) has used (/proc/PID/stat); None without a pid or /proc."""
    if pid is None:
        return None
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / _TICK


def descendants(pid: int, parents: Mapping[int, int], stop: Collection[int] = ()) -> list[int]:
    """``pid``'s child processes, theirs, and so on, from each process's parent; ``stop``: processes left out
    with their own descendants (another tenant's, such as the system under test, a child of the generator's).

    >>> descendants(1, {2: 1, 3: 2, 4: 1, 5: 9})
    [2, 4, 3]
    >>> descendants(1, {2: 1, 3: 2, 4: 1, 5: 9}, stop={2})
    [4]
    """
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    out, todo = [], [pid]
    while todo:
        found = sorted(c for c in children.get(todo.pop(0), []) if c not in stop)
        out += found
        todo += found
    return out


def _parents() -> dict[int, int]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat_fields(int(name))) is not None:
            out[int(name)] = int(fields[1])
    return out


def tree_cpu_seconds(pid: int | None, stop: Collection[int] = (), parents: Mapping[int, int] | None = None
                     ) -> float | None:
    """:func:`cpu_seconds` of ``pid`` and its live descendants but ``stop`` and theirs; None if ``pid`` is gone."""
    own = cpu_seconds(pid)
    if own is None or pid is None:
        return own
    tree = descendants(pid, _parents() if parents is None else parents, stop)
    return own + sum(cpu_seconds(c) or 0.0 for c in tree)


def machine_times(text: str) -> dict[str, float]:
    """The machine's CPU seconds, all cores together, from ``/proc/stat``'s first line: busy (user, nice,
    system, irq, softirq), idle (idle, iowait) and steal. Guest time is inside user already.

    >>> machine_times("cpu  100 0 50 800 10 0 5 35 0 0\\ncpu0 1 2 3\\n")
    {'busy': 1.55, 'idle': 8.1, 'steal': 0.35}
    """
    fields = [int(x) for x in text.split("\n", 1)[0].split()[1:]]
    fields += [0] * (8 - len(fields))
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return {"busy": (user + nice + system + irq + softirq) / _TICK, "idle": (idle + iowait) / _TICK,
            "steal": steal / _TICK}


def snapshot(pids: Mapping[str, int | None]) -> dict:
    """Each tenant's CPU seconds so far (None: not on this machine) and the machine's, now."""
    t = time.monotonic()  # with the machine's counters: their difference over the same wall clock
    try:
        machine = machine_times(Path("/proc/stat").read_text())
    except OSError:
        machine = None
    parents = _parents()
    roots = {pid for pid in pids.values() if pid is not None}
    tenants = {name: tree_cpu_seconds(pid, roots - {pid}, parents) for name, pid in pids.items()}
    return {"t": t, "tenants": tenants, "machine": machine}


def cores_used(before: dict, after: dict) -> dict[str, float | None]:
    """Cores each tenant used between two snapshots (CPU-seconds per second), then ``other`` (the machine's
    busy time none of them had), ``idle`` and ``steal``; None where a figure was not read both times."""
    wall = after["t"] - before["t"]
    out: dict[str, float | None] = {}
    if wall <= 0:
        return out
    for name, cpu in after["tenants"].items():
        was = before["tenants"].get(name)
        out[name] = None if cpu is None or was is None else round(max(0.0, cpu - was) / wall, 3)
    m0, m1 = before.get("machine"), after.get("machine")
    if m0 and m1:
        busy = (m1["busy"] - m0["busy"]) / wall
        out["other"] = round(max(0.0, busy - sum(v for v in out.values() if v is not None)), 3)
        out["idle"] = round(max(0.0, m1["idle"] - m0["idle"]) / wall, 3)
        out["steal"] = round(max(0.0, m1["steal"] - m0["steal"]) / wall, 3)
    return out
