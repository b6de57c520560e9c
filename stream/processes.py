"""Run N worker processes on one machine: consumer-group members that share the partitions.

``eddy worker --processes N`` starts N ``eddy worker`` processes with the same settings and
instance ids ``<instance_id>-p0`` ... ``-p<N-1>`` (each a stable ``transactional.id``),
forwards SIGTERM/SIGINT to them, and restarts one that dies (after a second) until it is
told to stop. With ``policy_learner=role`` it also runs the policy's one ``eddy learner``. Parallelism is bounded by the partition count: a member beyond it idles.
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


def process_instance_id(instance_id: str, index: int) -> str:
    """The instance id of worker process ``index`` started under ``instance_id``.

    >>> process_instance_id("worker", 1)
    'worker-p1'
    """
    return f"{instance_id}-p{index}"


def instance_ids(instance_id: str, n: int) -> list[str]:
    """The instance ids of ``n`` worker processes started under ``instance_id``, in order."""
    return [process_instance_id(instance_id, i) for i in range(n)]


def child_env(settings: Settings, index: int) -> dict[str, str]:
    env = child_environment(settings)
    env["EDDY_INSTANCE_ID"] = process_instance_id(settings.instance_id, index)
    if settings.metrics_port:  # one /metrics endpoint per process, on consecutive ports
        env["EDDY_METRICS_PORT"] = str(settings.metrics_port + index)
    return env


def child_commands(settings: Settings, n: int, *, max_seconds: float | None = None
                   ) -> list[tuple[list[str], dict[str, str]]]:
    """``(argv, environment)`` of each child: ``n`` workers, then, with ``policy_learner=role``, the one learner.

    >>> from stream.config import from_env
    >>> [argv[3:] for argv, _ in child_commands(from_env({}, policy_learner="role"), 2, max_seconds=5)]
    [['worker', '--max-seconds', '5'], ['worker', '--max-seconds', '5'], ['learner', '--max-seconds', '5']]
    """
    tail = ["--max-seconds", str(max_seconds)] if max_seconds is not None else []
    out = [([sys.executable, "-m", "stream.cli", "worker", *tail], child_env(settings, i)) for i in range(n)]
    if settings.policy_learner == "role":  # the one learner of the policy, restarted like a worker
        out.append(([sys.executable, "-m", "stream.cli", "learner", *tail], child_environment(settings)))
    return out


def run_processes(settings: Settings, n: int, *, max_seconds: float | None = None) -> int:
    commands = child_commands(settings, n, max_seconds=max_seconds)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for p in children:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    children = [subprocess.Popen(argv, env=env) for argv, env in commands]
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    ids = instance_ids(settings.instance_id, n)
    log.info("started %d worker processes: %s", n, ", ".join(ids))
    failed = 0
    while True:
        for i, p in enumerate(children):
            rc = p.poll()
            if rc is None:
                continue
            if stopping or rc == 0:
                continue
            log.warning("%s exited with %d; restarting it", f"worker {ids[i]}" if i < n else "the learner", rc)
            failed += 1
            time.sleep(1.0)
            children[i] = subprocess.Popen(commands[i][0], env=commands[i][1])
        if all(p.poll() is not None for p in children):
            break
        time.sleep(0.2)
    # A child that our SIGTERM reached before it installed its handler (a restarted one still
    # importing) stopped as asked, by the default action: -SIGTERM is a clean stop then.
    clean = (0, -signal.SIGTERM) if stopping else (0,)
    return 0 if all(p.returncode in clean for p in children) else 1
