"""The systems under test: what each one is, its settings, and its process.

Every system gets its own topic prefix (so its own topics, consumer group
and Redis keys), the same feature net registered and made live under that
prefix, and its own OS process started with ``python -m benchmarks.sut``.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from features.errors import EddyError
from stream import config
from stream.config import REPO_ROOT, Settings, child_environment
from stream.kafka_io import delete_topics, ensure_topics
from stream.store import redis_client

if TYPE_CHECKING:  # the CLI imports this module to build its parser: keep torch out of it
    from features.model import FeatureModel


class BenchError(EddyError, RuntimeError):
    """The benchmark cannot go on: the stack is down, or a system failed; the message says which and why."""


@dataclass(frozen=True)
class System:
    name: str
    kind: str  # eddy | echo | naive | http
    processing: str  # exactly_once | at_least_once | n/a
    title: str
    description: str
    workers: int = 1  # worker processes (eddy worker --processes N)
    # Redis's AOF fsync policy while this system runs (CONFIG SET, restored after); None: the stack's own.
    redis_appendfsync: str | None = None

    @property
    def transport(self) -> str:
        return "http" if self.kind == "http" else "kafka"

    @property
    def learns(self) -> bool:
        return self.kind != "echo"


SYSTEMS = (
    System("eddy-eos", "eddy", "exactly_once", "Eddy, exactly_once",
           "stream.worker.Worker: batched feature net, in-process user cache over Redis, one Redis commit script "
           "per batch, then the predictions at once (idempotent producer); the rest in one Kafka transaction per "
           "commit span (commit_interval_ms), committed off the loop"),
    System("eddy-eos-fsync", "eddy", "exactly_once", "Eddy, exactly_once, Redis fsync per write",
           "the same worker against the same Redis switched to appendfsync always (an fsync before every reply: "
           "durable against power loss of the Redis machine, which the single broker is not)",
           redis_appendfsync="always"),
    System("eddy-eos-2w", "eddy", "exactly_once", "Eddy, exactly_once, 2 workers",
           "two worker processes in one consumer group (eddy worker --processes 2), two partitions each",
           workers=2),
    System("floor-eos", "echo", "exactly_once", "Kafka floor, transactional",
           "the worker's own loop, client settings and publish path (echoes on the predictions producer, offsets "
           "in one transaction per commit span) with the work taken out: queries echoed to the predictions topic"),
    System("eddy-alo", "eddy", "at_least_once", "Eddy, at_least_once",
           "the same worker; per batch: the Redis commit script; per commit span: flush + synchronous offset commit "
           "(no transaction)"),
    System("floor-alo", "echo", "at_least_once", "Kafka floor, at-least-once",
           "the worker's own loop, client settings and publish path (flush + synchronous commit per span) with "
           "the work taken out: queries echoed to the predictions topic"),
    System("naive", "naive", "at_least_once", "Naive pipeline",
           "one message at a time, one feature-net forward per query, Redis GET of the user's state per event, "
           "produce + flush + synchronous commit per message"),
    System("http", "http", "n/a", "Model in a container (HTTP)",
           "the same per-event scoring behind an ASGI app under uvicorn (one process), "
           "driven over HTTP/1.1 keep-alive"),
)
BY_NAME = {s.name: s for s in SYSTEMS}


def check_stack(settings: Settings) -> None:
    """Fail with a clear message when Kafka or Redis is not answering."""
    from stream.kafka_io import KafkaUnavailable, wait_for_broker

    try:
        wait_for_broker(settings, timeout_s=10)
    except KafkaUnavailable as exc:
        raise BenchError(f"{exc}; set EDDY_BOOTSTRAP to the running broker") from None
    try:
        redis_client(settings).ping()
    except redis.RedisError as exc:
        raise BenchError(f"no Redis answered at {settings.redis_url} (start it with: deploy/stack up; "
                         f"or set EDDY_REDIS_URL): {exc}") from None


class Deployment:
    """One system's topics, registry entry and Redis keys; :meth:`cleanup` removes all of them."""

    def __init__(self, base: Settings, prefix: str, model: FeatureModel, model_dir: Path, **overrides):
        self.settings = config.replace(base, topic_prefix=prefix, group=f"{prefix}workers", instance_id="bench0",
                                       model_dir=str(model_dir), **overrides).validated()
        self.topics = ensure_topics(self.settings)
        self.redis = redis_client(self.settings)
        from stream.store import open_registry
        from stream.store import RedisStore

        self.store = RedisStore.from_settings(self.settings)
        registry = open_registry(self.settings)
        registry.register(model, {"source": "benchmark"})
        registry.promote(model.version)

    def cleanup(self) -> None:
        delete_topics(self.settings, self.topics)
        self.store.delete_deployment()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A system under test in its own process; its output goes to a log file quoted in any error."""

    def __init__(self, system: System, settings: Settings, log_dir: Path, *, profile: Path | None = None):
        self.system = system
        self.log_path = log_dir / f"{system.name}-{int(time.time() * 1000)}.log"
        self.port = free_port() if system.kind == "http" else None
        cmd = [sys.executable, "-m", "benchmarks.sut", system.kind]
        if profile is not None:
            cmd += ["--profile", str(profile)]
        if self.port:
            cmd += ["--port", str(self.port)]
        if system.workers > 1:
            cmd += ["--processes", str(system.workers)]
        env = child_environment(settings)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def check(self) -> None:
        rc = self.proc.poll()
        if rc is not None:
            raise BenchError(f"{self.system.name} exited with status {rc}; last lines of {self.log_path}:\n"
                             f"{self.log_tail()}")

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode
