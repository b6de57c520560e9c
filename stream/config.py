"""All configuration in one place: defaults < environment (EDDY_*) < CLI flags.

Defaults run against the local stack from ``deploy/stack up``. Every field
has one environment variable, ``EDDY_<FIELD>`` in upper case, and one flag,
``--<field-with-dashes>``, added by :func:`add_arguments`.

Kafka client settings are chosen for latency, and written down here because
client defaults would dominate every figure:

* consumer ``fetch.wait.max.ms=5``: librdkafka's default (500 ms) is how long
  the broker holds an empty fetch; with ``fetch.min.bytes=1`` data returns at
  once anyway, but a short wait keeps shutdown, rebalances and idle
  partitions responsive.
* producer ``linger.ms=1``: librdkafka waits 5 ms by default to fill batches,
  which would add 5 ms to every prediction. 1 ms still batches under load.
* ``socket.nagle.disable=true`` (both): librdkafka leaves Nagle's algorithm on,
  which holds small requests back on loopback; one query is a small request.
* ``acks=all`` and idempotence: required for transactions, and a prediction
  that is acknowledged must not be lost.
* ``retry.backoff.ms=5`` (transactional producer): a transaction begun right
  after the previous commit gets CONCURRENT_TRANSACTIONS until the broker has
  written the commit markers; librdkafka's 100 ms default backoff would stall
  every back-to-back batch by 100 ms.
* worker ``commit_interval_ms=100`` (Kafka Streams' default under exactly-once):
  batches published within 100 ms share one transaction, so its commit (about
  10-15 ms of round trips here) is paid ten times a second, not once a batch.
  Predictions do not wait for it (they leave at once on their own producer);
  only ``read_committed`` readers of decisions and outcomes see them up to
  100 ms later, and a failure re-reads up to 100 ms of batches, which Redis
  re-emits without learning twice.
* ``transaction.timeout.ms=10000``: a killed worker's open transaction blocks
  ``read_committed`` readers until it times out or the worker restarts with
  the same ``transactional.id``; 10 s bounds that stall.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from features.errors import EddyError

REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(EddyError, ValueError):
    """A bad setting; the message names the setting and the value.

    ``setting`` is the field at fault when one is: the message then starts with
    its name, so :func:`from_env` and :func:`from_args` can say where the value
    came from (``EDDY_PARTITIONS must ...``, ``--partitions must ...``).
    """

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.setting = setting

    def named(self, label: str) -> "ConfigError":
        text = str(self)
        if self.setting is None or not text.startswith(self.setting):
            return self
        return ConfigError(label + text[len(self.setting):], self.setting)


def _default_state_dir() -> str:
    return os.environ.get("EDDY_STATE_DIR", str(REPO_ROOT / ".eddy"))


@dataclass(frozen=True)
class Settings:
    bootstrap: str = field(default="127.0.0.1:9092", metadata={"help": "Kafka bootstrap servers"})
    redis_url: str = field(default="redis://127.0.0.1:6379/0", metadata={
        "help": "Redis URL: redis://, rediss:// or unix://; redis+cluster://host:port (any node) for a Redis Cluster"})
    topic_prefix: str = field(default="eddy.", metadata={"help": "prefix of every topic name"})
    partitions: int = field(default=4, metadata={"help": "partitions of each topic Eddy creates"})
    group: str = field(default="eddy-worker", metadata={"help": "consumer group of the workers"})
    instance_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-0",
        metadata={"help": "stable id of this worker (its transactional.id); unique per running worker"},
    )
    processing: str = field(
        default="exactly_once",
        metadata={"help": "exactly_once (Kafka transactions) or at_least_once (state stays exactly-once)"},
    )
    learner: str = field(default="river", metadata={"help": "per-user online learner: river, bayes or rls"})
    policy: str = field(
        default="epsilon_greedy:epsilon=0.1",
        metadata={"help": "exploration policy spec, e.g. softmax:temperature=0.5, thompson, vw:exploration=squarecb"},
    )
    join_window_s: float = field(default=600.0, metadata={"help": "feedback later than this after its decision is late"})
    reward_wait_s: float = field(
        default=0.0, metadata={"help": "how long a decision waits for its reward before the default reward is "
                                       "applied (at most join_window_s); 0: off, no default rewards"})
    default_reward: float = field(
        default=0.0, metadata={"help": "the reward applied to a decision whose reward did not come within "
                                       "reward_wait_s"})
    held_feedback_max: int = field(
        default=10_000, metadata={"help": "feedback that comes before its decision is held (per partition, at most "
                                          "the join window) up to this many; 0: dead-letter it at once"})
    max_batch: int = field(default=1024, metadata={"help": "most messages ever handled in one batch"})
    batch_slo_ms: float = field(
        default=10.0, metadata={"help": "batch-time objective of the adaptive (AIMD) batch-size limit"})
    poll_timeout_ms: int = field(default=20, metadata={"help": "longest wait for the next message"})
    commit_interval_ms: float = field(
        default=100.0, metadata={"help": "batches published within this long share one Kafka transaction (or "
                                         "offset commit); 0: one per batch"})
    fetch_wait_ms: int = field(default=5, metadata={"help": "consumer fetch.wait.max.ms"})
    linger_ms: float = field(default=1.0, metadata={"help": "producer linger.ms"})
    cache_users: int = field(default=100_000, metadata={"help": "per-user models kept in the worker's memory"})
    model_dir: str = field(
        default_factory=lambda: str(Path(_default_state_dir()) / "models"),
        metadata={"help": "directory of feature-net artifacts (the registry's files)"},
    )
    prior_refresh_s: float = field(default=5.0, metadata={"help": "how often the population prior is re-read"})
    seed: int = field(default=0, metadata={"help": "base seed of the exploration draws"})
    torch_threads: int = field(default=1, metadata={"help": "torch intra-op threads in the worker"})
    outage_give_up_s: float = field(
        default=600.0, metadata={"help": "how long the worker waits out a Redis or Kafka outage before it exits"})
    kafka_debug: str = field(
        default="", metadata={"help": "librdkafka debug contexts for every client, e.g. consumer,cgrp,fetch "
                                      "(logged by the worker; empty: off)"})
    metrics_port: int = field(
        default=9400, metadata={"help": "port of the worker's Prometheus /metrics endpoint; 0 turns it off "
                                        "(--processes N: child i listens on this + i)"})
    metrics_bind: str = field(
        default="127.0.0.1", metadata={"help": "address the metrics endpoint listens on (0.0.0.0: every interface)"})
    monitor_port: int = field(
        default=9410, metadata={"help": "port of eddy monitor's Prometheus /metrics endpoint (on metrics_bind); 0 turns it off"})
    monitor_tumbling_s: int = field(default=60, metadata={"help": "eddy monitor: tumbling window length, seconds"})
    monitor_hopping_s: int = field(default=300, metadata={"help": "eddy monitor: hopping window length, seconds"})
    monitor_hop_s: int = field(default=60, metadata={"help": "eddy monitor: hopping window step, seconds"})

    # ------------------------------------------------------------------ topics
    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def topics(self) -> dict[str, str]:
        return {n: self.topic(n) for n in TOPIC_NAMES}

    # --------------------------------------------------------------- validate
    def validated(self) -> "Settings":
        """Self, or a :class:`ConfigError` naming the first bad field and its value."""
        def bad(name: str, rule: str) -> ConfigError:
            return ConfigError(f"{name} must be {rule}, got {getattr(self, name)!r}", setting=name)

        if self.processing not in ("exactly_once", "at_least_once"):
            raise bad("processing", "exactly_once or at_least_once")
        if self.learner not in ("river", "bayes", "ridge", "rls"):
            raise bad("learner", "river, bayes or rls")
        for name in ("partitions", "max_batch", "cache_users", "torch_threads"):
            if getattr(self, name) < 1:
                raise bad(name, ">= 1")
        for name in ("join_window_s", "prior_refresh_s", "outage_give_up_s", "batch_slo_ms"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise bad(name, "a finite number > 0")
        for name in ("poll_timeout_ms", "fetch_wait_ms", "seed", "held_feedback_max"):
            if getattr(self, name) < 0:
                raise bad(name, ">= 0")
        if not (math.isfinite(self.reward_wait_s) and 0 <= self.reward_wait_s <= self.join_window_s):
            # beyond the join window the default reward itself would be late, and the decision may have expired
            raise bad("reward_wait_s", f"in [0, join_window_s={self.join_window_s:g}]")
        if not math.isfinite(self.default_reward):
            raise bad("default_reward", "a finite number")
        if not (math.isfinite(self.commit_interval_ms) and 0 <= self.commit_interval_ms <= 5_000):
            # above 5 s a span nears transaction.timeout.ms (10 s): the broker would abort it
            raise bad("commit_interval_ms", "in [0, 5000]")
        if not 0 <= self.metrics_port <= 65535:
            raise bad("metrics_port", "a TCP port in [0, 65535] (0: no metrics endpoint)")
        if not self.metrics_bind.strip():
            raise bad("metrics_bind", "an IP address or host name")
        if not 0 <= self.monitor_port <= 65535:
            raise bad("monitor_port", "a TCP port in [0, 65535] (0: no metrics endpoint)")
        for name in ("monitor_tumbling_s", "monitor_hopping_s", "monitor_hop_s"):  # faust steps whole seconds
            if not 1 <= getattr(self, name) <= 7 * 86_400:
                raise bad(name, "whole seconds in [1, 604800]")
        if self.monitor_hop_s > self.monitor_hopping_s:
            raise bad("monitor_hop_s", f"<= monitor_hopping_s ({self.monitor_hopping_s})")
        if not (math.isfinite(self.linger_ms) and 0 <= self.linger_ms <= 900_000):  # librdkafka's range
            raise bad("linger_ms", "in [0, 900000]")
        if not all(_HOST_PORT.fullmatch(b.strip()) for b in self.bootstrap.split(",")):
            raise bad("bootstrap", "host:port[,host:port...]")
        if not _redis_url_ok(self.redis_url):
            raise bad("redis_url", "a redis://host[:port][/db], rediss://, unix:// or redis+cluster://host:port URL")
        if not _TOPIC_CHARS.fullmatch(self.topic_prefix):
            raise bad("topic_prefix", "letters, digits, '.', '_' or '-' (Kafka topic names), at most 200")
        for name in ("group", "instance_id", "policy", "model_dir"):
            if not getattr(self, name).strip():
                raise bad(name, "non-empty")
        return self

    # ----------------------------------------------------------- kafka configs
    def consumer_config(self, group: str | None = None, **extra: Any) -> dict[str, Any]:
        cfg = {
            "bootstrap.servers": self.bootstrap,
            "group.id": group or self.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": self.fetch_wait_ms,
            "fetch.min.bytes": 1,
            "socket.nagle.disable": True,
            # range keeps partition i of queries and of feedback on one worker,
            # so each user's state is written and read in one process.
            "partition.assignment.strategy": "range",
            # The broker's minimum (group.min.session.timeout.ms): a crashed worker's partitions
            # move after 6 s. Heartbeats run on librdkafka's own thread, so a long batch is safe.
            "session.timeout.ms": 6_000,
            "heartbeat.interval.ms": 1_000,
        }
        if self.kafka_debug:
            cfg["debug"] = self.kafka_debug
        cfg.update(extra)
        return cfg

    def producer_config(self, transactional: bool = False, **extra: Any) -> dict[str, Any]:
        cfg = {
            "bootstrap.servers": self.bootstrap,
            "linger.ms": self.linger_ms,
            "socket.nagle.disable": True,
            "acks": "all",
            "enable.idempotence": True,
            # Same partitioner as the Java client, so keys land on the same
            # partition whichever client produced them.
            "partitioner": "murmur2_random",
        }
        if transactional:
            cfg["transactional.id"] = f"eddy-{self.group}-{self.instance_id}"
            cfg["transaction.timeout.ms"] = 10_000
            # Back-to-back transactions meet CONCURRENT_TRANSACTIONS while the last
            # commit's markers are written; the default 100 ms backoff stalls a batch.
            cfg["retry.backoff.ms"] = 5
        if self.kafka_debug:
            cfg["debug"] = self.kafka_debug
        cfg.update(extra)
        return cfg


def _redis_url_ok(url: str) -> bool:
    """The URL's shape only (scheme, port a number, db a number); whether Redis answers is found out later."""
    try:
        u = urlsplit(url)
        _ = u.port  # ValueError when not a number
    except ValueError:
        return False
    if u.scheme == "unix":
        return bool(u.path)
    db = u.path.strip("/")
    if u.scheme in ("redis+cluster", "rediss+cluster"):  # a cluster has database 0 only
        return bool(u.hostname) and db in ("", "0")
    return u.scheme in ("redis", "rediss") and bool(u.hostname) and (not db or db.isdigit())


_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\],]+):[0-9]{1,5}")
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]{0,200}")
TOPIC_NAMES = ("queries", "feedback", "predictions", "decisions", "outcomes", "model-updates", "dead-letter")


def _default_of(f) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def _env_value(f, raw: str) -> Any:
    typ = type(_default_of(f))
    try:
        return typ(raw)
    except ValueError:
        raise ConfigError(f"EDDY_{f.name.upper()} must be {typ.__name__}, got {raw!r}") from None


def from_env(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        key = f"EDDY_{f.name.upper()}"
        if key in env:
            values[f.name] = _env_value(f, env[key])
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    try:
        return Settings(**values).validated()
    except ConfigError as exc:  # name the variable the bad value came from
        if exc.setting in values and exc.setting not in given:
            raise exc.named(f"EDDY_{exc.setting.upper()}") from None
        raise


def add_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """Add ``--<setting>`` flags; unset flags fall back to the environment, then defaults."""
    group = parser.add_argument_group("settings (flag > EDDY_<NAME> environment variable > default)")
    for f in fields(Settings):
        if only is not None and f.name not in only:
            continue
        default = _default_of(f)
        group.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=type(default),
            default=None,
            metavar=type(default).__name__.upper(),
            help=f"{f.metadata.get('help', '')} (default: {default}; env EDDY_{f.name.upper()})",
        )


def from_args(args: argparse.Namespace) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(Settings)}
    try:
        return from_env(**overrides)
    except ConfigError as exc:  # name the flag the bad value came from
        if overrides.get(exc.setting) is not None:
            raise exc.named(f"--{exc.setting.replace('_', '-')}") from None
        raise


__all__ = ["Settings", "ConfigError", "from_env", "from_args", "add_arguments", "TOPIC_NAMES", "replace"]
