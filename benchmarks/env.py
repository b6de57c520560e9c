"""The machine and software a run measured: written into every result file."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
from pathlib import Path

import redis

from stream.config import REPO_ROOT, Settings

PACKAGES = ("confluent-kafka", "redis", "torch", "numpy", "river", "uvicorn", "h11", "httptools", "uvloop",
            "pandas", "matplotlib")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def broker_process(settings: Settings) -> tuple[int, str] | None:
    """The pid and command line of the broker process serving the bootstrap port, when it runs on this host."""
    port = settings.bootstrap.rsplit(":", 1)[-1]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "kafka.Kafka" not in cmd:
            continue
        props = cmd.split()[-1]
        try:
            text = Path(props).read_text()
        except OSError:
            continue
        if re.search(rf"^listeners=.*:{port}\b", text, re.M):
            return int(pid), cmd
    return None


def redis_pid(settings: Settings) -> int | None:
    """The pid of the Redis server Eddy uses, when it runs on this host (its ``process_id``, checked in /proc)."""
    from stream.store import redis_client

    try:
        pid = int(redis_client(settings).info("server")["process_id"])
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (redis.RedisError, KeyError, ValueError, OSError):
        return None
    return pid if b"redis" in cmd else None


def kafka_version(settings: Settings) -> dict:
    """The broker's version, read from the broker process serving the bootstrap port when it runs on this host.

    Kafka does not report its release over the protocol; the local broker's
    command line names its jars (``.../kafka-4.3.1/libs``, ``kafka_2.13-4.3.1.jar``).
    Otherwise the configured ``EDDY_KAFKA_VERSION`` (deploy/stack.env) is reported as configured.
    """
    found = broker_process(settings)
    if found is not None:
        pid, cmd = found
        m = re.search(r"kafka[-_](?:\d\.\d+-)?(\d+\.\d+\.\d+)", cmd)
        if m:
            port = settings.bootstrap.rsplit(":", 1)[-1]
            return {"version": m.group(1), "source": f"broker process {pid} (listeners on :{port})"}
    configured = os.environ.get("EDDY_KAFKA_VERSION")
    if not configured:
        m = re.search(r"EDDY_KAFKA_VERSION:=([\d.]+)", (REPO_ROOT / "deploy" / "stack.env").read_text())
        configured = m.group(1) if m else "unknown"
    return {"version": configured, "source": "configured (deploy/stack.env); broker not found on this host"}


def describe(settings: Settings) -> dict:
    import confluent_kafka

    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            versions[p] = None
    versions["librdkafka"] = confluent_kafka.libversion()[0]
    from stream.store import redis_client

    try:
        info = redis_client(settings).info("server")
        redis_server = {"version": info.get("redis_version"), "mode": info.get("redis_mode")}
    except redis.RedisError as exc:
        redis_server = {"error": str(exc)}
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "kafka": kafka_version(settings),
        "redis_server": redis_server,
        "packages": versions,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "shared_machine": ("the load generator, every system under test, the Kafka broker and Redis share "
                           f"these {os.cpu_count()} cores; compare systems within one run (ratios), not to other "
                           "machines"),
    }
