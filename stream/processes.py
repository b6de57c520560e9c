"""Run N worker processes on one machine: consumer-group members that share the partitions.

``eddy worker --processes N`` starts N ``eddy worker`` processes with the same settings and
instance ids ``<instance_id>-p0`` ... ``-p<N-1>`` (each a stable ``transactional.id``),
forwards SIGTERM/SIGINT to them, and restarts one that dies (after a second) until it is
told to stop. Parallelism is bounded by the partition count: a member beyond it idles.
Each child serves its own Prometheus endpoint on ``metrics_port + i`` (separate processes,
separate registries: simpler than prometheus_client's multiprocess mode, whose shared files
cannot carry the scrape-time gauges, lag and caches, that each worker reports).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

from stream.config import Settings, child_environment

log = logging.getLogger("eddy.processes")


def child_env(settings: Settings, index: int) -> dict[str, str]:
    env = child_environment(settings)
    env["EDDY_INSTANCE_ID"] = f"{settings.instance_id}-p{index}"
    if settings.metrics_port:  # one /metrics endpoint per process, on consecutive ports
        env["EDDY_METRICS_PORT"] = str(settings.metrics_port + index)
    return env


def run_processes(settings: Settings, n: int, *, max_seconds: float | None = None) -> int:
    argv = [sys.executable, "-m", "stream.cli", "worker"]
    if max_seconds is not None:
        argv += ["--max-seconds", str(max_seconds)]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for p in children:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    children = [subprocess.Popen(argv, env=child_env(settings, i)) for i in range(n)]
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    log.info("started %d worker processes: %s", n, ", ".join(f"{settings.instance_id}-p{i}" for i in range(n)))
    failed = 0
    while True:
        for i, p in enumerate(children):
            rc = p.poll()
            if rc is None:
                continue
            if stopping or rc == 0:
                continue
            log.warning("worker %s-p%d exited with %d; restarting it", settings.instance_id, i, rc)
            failed += 1
            time.sleep(1.0)
            children[i] = subprocess.Popen(argv, env=child_env(settings, i))
        if all(p.poll() is not None for p in children):
            break
        time.sleep(0.2)
    return 0 if all(p.returncode == 0 for p in children) else 1
