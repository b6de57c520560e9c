"""All configuration in one place: defaults < environment (EDDY_*) < CLI flags.

Defaults run against the local stack from ``deploy/stack up``. Every field
has one environment variable, ``EDDY_<FIELD>`` in upper case, and one flag,
``--<field-with-dashes>``, added by :func:`add_arguments`, and names its check in
``metadata["rule"]`` (a :class:`_Rule`: ``_POSITIVE``, ``_within(0, 64)``, ...):
:meth:`Settings.validated` applies every field's rule, then the checks between settings.

Kafka client settings are chosen for latency, and written down here because
client defaults would dominate every figure:

* consumer ``fetch.wait.max.ms=100``: how long the broker holds a fetch that
  finds nothing new (librdkafka's default is 500 ms). With ``fetch.min.bytes=1``
  a record that arrives meanwhile returns the fetch at once, so this does not
  delay data; it sets how often an idle consumer asks again. At 5 ms (the
  setting until 2026-12-07) every idle consumer sent 200 fetches a second,
  which cost the broker and the worker a tenth of a core on a 2-core machine
  (docs/design.md, "Client settings"); 100 ms bounds how long a partition
  assigned by a rebalance waits for the fetch in flight.
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

Authentication and encryption (off by default: the local stack listens on
loopback only). ``kafka_security_protocol=sasl_ssl`` with a SCRAM user, and a
``rediss://`` URL with an ACL user, are applied to every client Eddy makes,
because every Kafka client takes its settings from :meth:`Settings.kafka_config`
and every Redis client from :meth:`Settings.redis_options`. Passwords are
:class:`Secret` fields: they come only from ``EDDY_<NAME>`` or a file named by
``EDDY_<NAME>_FILE`` / ``--<name>-file`` (never a flag: argv is visible to every
user of the machine), and print as ``***`` in reprs, errors and ``--help``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable
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


class Secret:
    """A password: ``repr``/``str`` print ``***``; :meth:`reveal` is the one way to read it.

    Kept out of ``str`` on purpose, so an f-string, a log line or an exception
    message that names a setting cannot leak it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str = ""):
        object.__setattr__(self, "_value", str(value))

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __setattr__(self, *_: object) -> None:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = lambda self: "***" if self._value else ""  # noqa: E731


_KAFKA_PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
# librdkafka settings that hold a secret: never printed (benchmarks' reports print client configs).
KAFKA_SECRET_KEYS = ("sasl.password", "ssl.key.password", "ssl.keystore.password")


@dataclass(frozen=True)
class _Rule:
    """What one setting's value must be: ``ok(value)``, else :meth:`Settings.validated` raises
    "<setting> must be <text>, got <value>". A field names its rule in ``metadata["rule"]``."""

    text: str
    ok: Callable[[Any], bool]


def _one_of(*choices: str) -> _Rule:
    return _Rule(", ".join(choices[:-1]) + " or " + choices[-1], lambda v: v in choices)


def _within(low: float, high: float, note: str = "") -> _Rule:
    """A finite number in ``[low, high]``; ``note`` follows the interval in the message."""
    return _Rule(f"in [{low}, {high}]" + (f" {note}" if note else ""),
                 lambda v: math.isfinite(v) and low <= v <= high)


_AT_LEAST_0 = _Rule(">= 0", lambda v: v >= 0)
_AT_LEAST_1 = _Rule(">= 1", lambda v: v >= 1)
_FINITE = _Rule("a finite number", math.isfinite)
_POSITIVE = _Rule("a finite number > 0", lambda v: math.isfinite(v) and v > 0)
_NON_NEGATIVE = _Rule("a finite number >= 0", lambda v: math.isfinite(v) and v >= 0)
_NON_EMPTY = _Rule("non-empty", lambda v: bool(v.strip()))
_HOST = _Rule("an IP address or host name", lambda v: bool(v.strip()))
_PORT = _Rule("a TCP port in [0, 65535] (0: no metrics endpoint)", lambda v: 0 <= v <= 65535)
_WINDOW_S = _Rule("whole seconds in [1, 604800]", lambda v: 1 <= v <= 7 * 86_400)  # faust steps whole seconds
_LEARNER = _Rule("river, bayes or rls", lambda v: v in ("river", "bayes", "ridge", "rls"))  # ridge: bayes' alias
_CACHE_KINDS = _Rule("a comma-separated list of text, mlp", lambda v: set(v.split(",")) <= {"text", "mlp", ""})
_CHALLENGERS = re.compile(r"[^,/\s]+(\s*,\s*[^,/\s]+)*")
_LAST_K = re.compile(r"last:[1-9][0-9]*")
_CHALLENGER_LIST = _Rule(
    "a comma-separated list of versions, or last:K with K >= 1",
    lambda v: not v or bool(_CHALLENGERS.fullmatch(v.strip()) and (
        not v.strip().startswith("last:") or _LAST_K.fullmatch(v.strip()))))
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\],]+):[0-9]{1,5}")
_BOOTSTRAP = _Rule("host:port[,host:port...]", lambda v: all(_HOST_PORT.fullmatch(b.strip()) for b in v.split(",")))
_TOPIC_PREFIX = _Rule("letters, digits, '.', '_' or '-' (Kafka topic names), at most 200",
                      re.compile(r"[A-Za-z0-9._-]{0,200}").fullmatch)


def _default_state_dir() -> str:
    return os.environ.get("EDDY_STATE_DIR", str(REPO_ROOT / ".eddy"))


@dataclass(frozen=True)
class Settings:
    bootstrap: str = field(default="127.0.0.1:9092", metadata={"help": "Kafka bootstrap servers", "rule": _BOOTSTRAP})
    redis_url: str = field(default="redis://127.0.0.1:6379/0", metadata={
        "help": "Redis URL: redis://, rediss:// or unix://; redis+cluster://host:port (any node) for a Redis Cluster"})
    topic_prefix: str = field(default="eddy.", metadata={"help": "prefix of every topic name", "rule": _TOPIC_PREFIX})
    partitions: int = field(default=4, metadata={"help": "partitions of each topic Eddy creates", "rule": _AT_LEAST_1})
    group: str = field(default="eddy-worker", metadata={"help": "consumer group of the workers", "rule": _NON_EMPTY})
    instance_id: str = field(
        default_factory=lambda: f"{socket.gethostname()}-0",
        metadata={"help": "stable id of this worker (its transactional.id); unique per running worker",
                  "rule": _NON_EMPTY},
    )
    processing: str = field(
        default="exactly_once",
        metadata={"help": "exactly_once (Kafka transactions) or at_least_once (state stays exactly-once)",
                  "rule": _one_of("exactly_once", "at_least_once")},
    )
    learner: str = field(default="river", metadata={"help": "per-user online learner: river, bayes or rls",
                                                    "rule": _LEARNER})
    policy: str = field(
        default="epsilon_greedy:epsilon=0.1",
        metadata={"help": "exploration policy spec, e.g. softmax:temperature=0.5, thompson, vw:exploration=squarecb",
                  "rule": _NON_EMPTY},
    )
    join_window_s: float = field(default=600.0, metadata={"help": "feedback later than this after its decision is late",
                                                          "rule": _POSITIVE})
    applied_ttl_s: float = field(
        default=7 * 24 * 3600.0,
        metadata={"help": "how long Redis keeps each applied feedback's marker (its source record and outputs, "
                          "re-emitted if the record is read again); at least twice join_window_s",
                  "rule": _POSITIVE})
    reward_wait_s: float = field(
        default=0.0, metadata={"help": "how long a decision waits for its reward before the default reward is "
                                       "applied (at most join_window_s); 0: off, no default rewards"})
    default_reward: float = field(
        default=0.0, metadata={"help": "the reward applied to a decision whose reward did not come within "
                                       "reward_wait_s",
                               "rule": _FINITE})
    apprentice: bool = field(
        default=False, metadata={"help": "apprentice mode: serve each query's default_action (else its first "
                                         "candidate) with propensity 1 and learn from it, until `eddy apprentice "
                                         "evaluate` finds the learned policy better (docs/design.md)"})
    reward_aggregation: str = field(
        default="earliest", metadata={"help": "earliest: the first reward of a request is applied; sum: every reward "
                                              "within reward_wait_s is added up and applied once when the wait ends",
                                      "rule": _one_of("earliest", "sum")})
    policy_learner: str = field(
        default="worker", metadata={"help": "who trains a learning policy (vw): worker (each worker, from the feedback "
                                            "it joins) or role (one `eddy learner` from the outcomes topic; workers "
                                            "hot-swap its snapshots)",
                                    "rule": _one_of("worker", "role")})
    learner_snapshot_s: float = field(
        default=1.0, metadata={"help": "eddy learner: publish a policy snapshot (and its input offsets) at most this "
                                       "often while it learns",
                               "rule": _POSITIVE})
    held_feedback_max: int = field(
        default=10_000, metadata={"help": "feedback that comes before its decision is held (per partition, at most "
                                          "the join window) up to this many; 0: dead-letter it at once",
                                  "rule": _AT_LEAST_0})
    max_batch: int = field(default=1024, metadata={"help": "most messages ever handled in one batch",
                                                   "rule": _AT_LEAST_1})
    batch_slo_ms: float = field(
        default=10.0, metadata={"help": "batch-time objective of the adaptive (AIMD) batch-size limit (not applied "
                                        "while a backlog of more than a batch waits: the limit grows)",
                                "rule": _POSITIVE})
    poll_timeout_ms: int = field(default=20, metadata={"help": "longest wait for the next message",
                                                       "rule": _AT_LEAST_0})
    commit_interval_ms: float = field(
        default=100.0, metadata={"help": "batches published within this long share one Kafka transaction (or "
                                         "offset commit); 0: one per batch",
                                 # above 5 s a span nears transaction.timeout.ms (10 s): the broker would abort it
                                 "rule": _within(0, 5_000)})
    fetch_wait_ms: int = field(default=100, metadata={"help": "consumer fetch.wait.max.ms", "rule": _AT_LEAST_0})
    linger_ms: float = field(default=1.0, metadata={"help": "producer linger.ms", "rule": _within(0, 900_000)})  # librdkafka's range
    cache_users: int = field(default=100_000, metadata={"help": "per-user models kept in the worker's memory",
                                                        "rule": _AT_LEAST_1})
    join_memory_mb: float = field(
        default=64.0, metadata={"help": "MiB of memory for the join records of the worker's own recent decisions: "
                                        "their feedback, within the join window, joins without a Redis read; 0: off",
                                "rule": _AT_LEAST_0})
    feature_cache_size: int = field(
        default=100_000, metadata={"help": "feature-cache entries of the live feature net (text kind: item text "
                                           "encodings; MLP: f rows), least recently used evicted; 0: off",
                                   "rule": _AT_LEAST_0})
    lsh_bits: int = field(
        default=0, metadata={"help": "SimHash bits coarsening the feature cache's numeric keys (similar inputs "
                                     "share an entry, an approximation); 0: exact keys",
                             "rule": _within(0, 64)})
    feature_cache_kinds: str = field(
        default="text", metadata={"help": "comma-separated feature-net kinds whose features are cached: text (its "
                                          "sentence encodings), mlp (whole rows; cheaper to compute than to cache "
                                          "unless lsh_bits coarsens, docs/design.md#feature-cache)",
                                  "rule": _CACHE_KINDS})
    feature_cache_warm: int = field(
        default=10_000, metadata={"help": "on a hot swap, the live cache's most recent inputs computed with the "
                                          "new feature net before it serves",
                                  "rule": _AT_LEAST_0})
    model_dir: str = field(
        default_factory=lambda: str(Path(_default_state_dir()) / "models"),
        metadata={"help": "directory of feature-net artifacts (the registry's files)", "rule": _NON_EMPTY},
    )
    prior_refresh_s: float = field(default=5.0, metadata={"help": "how often the population prior is re-read",
                                                          "rule": _POSITIVE})
    challengers: str = field(
        default="", metadata={"help": "feature-net versions served beside the live one (model selection): "
                                      "v2,v3, or last:K (the K newest registered versions other than the live "
                                      "one, resolved at start); empty: off",
                              "rule": _CHALLENGER_LIST})
    selection: str = field(
        default="shadow", metadata={"help": "with challengers: shadow (the live version answers, the challengers "
                                            "are scored and their error compared), exp3 (Exp3 picks the version "
                                            "that answers each query) or exp4 (an Exp4-weighted ensemble)",
                                    "rule": _one_of("shadow", "exp3", "exp4")})
    selection_eta: float = field(default=0.05, metadata={"help": "learning rate of the Exp3/Exp4 selector",
                                                         "rule": _POSITIVE})
    selection_gamma: float = field(
        default=0.05, metadata={"help": "uniform mixing of the Exp3/Exp4 selector: each version keeps at least "
                                        "gamma / versions",
                                "rule": _within(0, 1)})
    selection_loss_scale: float = field(
        default=4.0, metadata={"help": "a squared error of this much or more is the selector's loss 1",
                               "rule": _POSITIVE})
    seed: int = field(default=0, metadata={"help": "base seed of the exploration draws", "rule": _AT_LEAST_0})
    gc_freeze_start: bool = field(
        default=True, metadata={"help": "freeze the start-up heap (the feature net and its libraries) once the model "
                                        "is loaded, so Python's full garbage collections never walk it (stream.heap)"})
    gc_freeze_s: float = field(
        default=0.0, metadata={"help": "experimental, off (0) by default because it measured worse: every this "
                                       "many seconds the worker freezes what survived Python's young collections, "
                                       "and full collections run only every gc_full_s (stream.heap)",
                               "rule": _NON_NEGATIVE})
    gc_full_s: float = field(
        default=3600.0, metadata={"help": "how often the worker runs a full garbage collection that frees cycles "
                                          "which died frozen (with gc_freeze_start or gc_freeze_s)",
                                  "rule": _POSITIVE})
    torch_threads: int = field(default=1, metadata={"help": "torch intra-op and BLAS (numpy) threads in the worker",
                                                    "rule": _AT_LEAST_1})
    deadline_ms: float = field(
        default=0.0, metadata={"help": "answer each query within this long after its ts (a query's own deadline_ms "
                                       "overrides it); features not ready by then are replaced by their running "
                                       "mean (docs/design.md, Anytime predictions); 0: off",
                               "rule": _within(0, 3_600_000, "(0: off)")})
    deadline_reserve_ms: float = field(
        default=5.0, metadata={"help": "with a deadline: the feature net's budget ends this long before it, kept "
                                       "for scoring, the Redis commit and publishing",
                               "rule": _NON_NEGATIVE})
    anytime_chunk_rows: int = field(
        default=256, metadata={"help": "with a deadline: candidates per feature-net chunk (the steps at which a "
                                       "budget can end)",
                               "rule": _AT_LEAST_1})
    anytime_items: int = field(
        default=100_000, metadata={"help": "items whose running feature mean a worker keeps per feature-net version",
                                   "rule": _AT_LEAST_1})
    cascade_cheap_version: str = field(
        default="", metadata={"help": "prediction cascade: this registered feature-net version answers first and "
                                      "the live one only when it is unsure (docs/design.md, IDK cascade); "
                                      "empty: off"})
    cascade_margin: float = field(
        default=0.1, metadata={"help": "prediction cascade: the cheap model is unsure (the query escalates) when "
                                       "its two best scores are closer than this",
                               "rule": _NON_NEGATIVE})
    outage_give_up_s: float = field(
        default=600.0, metadata={"help": "how long the worker waits out a Redis or Kafka outage before it exits",
                                 "rule": _POSITIVE})
    kafka_security_protocol: str = field(
        default="plaintext", metadata={"help": "Kafka security.protocol: plaintext, ssl, sasl_plaintext or sasl_ssl"})
    kafka_sasl_mechanism: str = field(
        default="SCRAM-SHA-512", metadata={"help": "SASL mechanism with sasl_*: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"})
    kafka_username: str = field(default="", metadata={"help": "Kafka SASL user (with sasl_*)"})
    kafka_password: Secret = field(
        default=Secret(), metadata={"secret": True, "help": "Kafka SASL password"})
    kafka_ca_file: str = field(
        default="", metadata={"help": "PEM file of the CA that signed the brokers' certificates (with ssl, "
                                      "sasl_ssl; empty: the system's CAs)"})
    redis_username: str = field(default="", metadata={"help": "Redis ACL user (empty: 'default' when a password is set)"})
    redis_password: Secret = field(default=Secret(), metadata={"secret": True, "help": "Redis ACL password"})
    redis_ca_file: str = field(
        default="", metadata={"help": "PEM file of the CA that signed Redis's certificate (with rediss://; "
                                      "empty: the system's CAs)"})
    kafka_debug: str = field(
        default="", metadata={"help": "librdkafka debug contexts for every client, e.g. consumer,cgrp,fetch "
                                      "(logged by the worker; empty: off)"})
    metrics_port: int = field(
        default=9400, metadata={"help": "port of the worker's Prometheus /metrics endpoint; 0 turns it off "
                                        "(--processes N: child i listens on this + i)",
                                "rule": _PORT})
    metrics_bind: str = field(
        default="127.0.0.1", metadata={"help": "address the metrics endpoint listens on (0.0.0.0: every interface)",
                                       "rule": _HOST})
    monitor_port: int = field(
        default=9410, metadata={"help": "port of eddy monitor's Prometheus /metrics endpoint (on metrics_bind); 0 turns it off",
                                "rule": _PORT})
    monitor_tumbling_s: int = field(default=60, metadata={"help": "eddy monitor: tumbling window length, seconds",
                                                          "rule": _WINDOW_S})
    monitor_hopping_s: int = field(default=300, metadata={"help": "eddy monitor: hopping window length, seconds",
                                                          "rule": _WINDOW_S})
    monitor_hop_s: int = field(default=60, metadata={"help": "eddy monitor: hopping window step, seconds",
                                                     "rule": _WINDOW_S})

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

        for f in fields(self):
            rule = f.metadata.get("rule")
            if rule is not None and not rule.ok(getattr(self, f.name)):
                raise bad(f.name, rule.text)
        # What no single field's rule can say: bounds set by other settings.
        if not (math.isfinite(self.reward_wait_s) and 0 <= self.reward_wait_s <= self.join_window_s):
            # beyond the join window the default reward itself would be late, and the decision may have expired
            raise bad("reward_wait_s", f"in [0, join_window_s={self.join_window_s:g}]")
        if self.applied_ttl_s < 2 * self.join_window_s:
            # a marker gone while its decision's join record (kept twice the join window) is still there would
            # let the same feedback, read again or sent twice, be learned twice
            raise bad("applied_ttl_s", f"at least twice join_window_s ({2 * self.join_window_s:g})")
        if self.reward_aggregation == "sum" and self.reward_wait_s <= 0:
            # the sum is applied when the wait ends: without a wait there is no end
            raise ConfigError("reward_aggregation=sum needs reward_wait_s > 0 (the sum is applied when the wait "
                              f"ends), got reward_wait_s={self.reward_wait_s!r}", setting="reward_aggregation")
        if self.monitor_hop_s > self.monitor_hopping_s:
            raise bad("monitor_hop_s", f"<= monitor_hopping_s ({self.monitor_hopping_s})")
        if urlsplit(self.redis_url).password is not None:  # the URL is not echoed: it holds the password
            raise ConfigError("redis_url must not hold a password: set it with EDDY_REDIS_PASSWORD or "
                              "EDDY_REDIS_PASSWORD_FILE", setting="redis_url")
        if not _redis_url_ok(self.redis_url):
            raise bad("redis_url", "a redis://host[:port][/db], rediss://, unix:// or redis+cluster://host:port URL")
        self._validate_security(bad)
        return self

    def _validate_security(self, bad) -> None:
        if self.kafka_security_protocol not in _KAFKA_PROTOCOLS:
            raise bad("kafka_security_protocol", " or ".join(_KAFKA_PROTOCOLS))
        sasl = self.kafka_security_protocol.startswith("sasl_")
        if sasl:
            if self.kafka_sasl_mechanism not in _SASL_MECHANISMS:
                raise bad("kafka_sasl_mechanism", " or ".join(_SASL_MECHANISMS))
            if not self.kafka_username:
                raise bad("kafka_username", f"set with kafka_security_protocol={self.kafka_security_protocol}")
            if not self.kafka_password:
                raise ConfigError("kafka_password must be set (EDDY_KAFKA_PASSWORD or EDDY_KAFKA_PASSWORD_FILE) "
                                  f"with kafka_security_protocol={self.kafka_security_protocol}",
                                  setting="kafka_password")
        elif self.kafka_username or self.kafka_password:
            raise bad("kafka_security_protocol", "sasl_ssl or sasl_plaintext when a Kafka user or password is set")
        if self.kafka_ca_file and not self.kafka_security_protocol.endswith("ssl"):
            raise bad("kafka_security_protocol", "ssl or sasl_ssl when kafka_ca_file is set")
        if self.redis_ca_file and urlsplit(self.redis_url).scheme != "rediss":
            raise bad("redis_url", "a rediss:// URL when redis_ca_file is set")
        if self.redis_username and not self.redis_password:
            raise ConfigError(f"redis_password must be set (EDDY_REDIS_PASSWORD or EDDY_REDIS_PASSWORD_FILE) "
                              f"with redis_username={self.redis_username!r}", setting="redis_password")
        for name in ("kafka_ca_file", "redis_ca_file"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise bad(name, "an existing PEM file")

    # ----------------------------------------------------- client settings
    def kafka_config(self) -> dict[str, Any]:
        """Where the brokers are and how to authenticate: the part every Kafka client shares.

        The one place Kafka clients are configured: consumers, producers and
        admin clients all start from this dict.
        """
        cfg: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            # librdkafka waits half of this (at least 11 ms) between "connect to any broker" attempts,
            # and a new client pays that wait once: it drops its bootstrap connection after the first
            # metadata answer and asks again through the broker's own address. At the default 100 ms
            # every new client's first metadata call took 55-65 ms here (4-17 ms at 20 ms): a quarter
            # of a 20,000-decision replay from Kafka, which opens four. Reconnects after an outage
            # still back off exponentially from here to reconnect.backoff.max.ms (10 s).
            "reconnect.backoff.ms": 20,
        }
        if self.kafka_security_protocol != "plaintext":
            cfg["security.protocol"] = self.kafka_security_protocol
        if self.kafka_security_protocol.startswith("sasl_"):
            cfg["sasl.mechanism"] = self.kafka_sasl_mechanism
            cfg["sasl.username"] = self.kafka_username
            cfg["sasl.password"] = self.kafka_password.reveal()
        if self.kafka_ca_file:
            cfg["ssl.ca.location"] = self.kafka_ca_file
        if self.kafka_debug:
            cfg["debug"] = self.kafka_debug
        return cfg

    def admin_config(self, **extra: Any) -> dict[str, Any]:
        return {**self.kafka_config(), **extra}

    def redis_options(self) -> dict[str, Any]:
        """Keyword arguments of ``redis.Redis.from_url`` next to :attr:`redis_url`: the ACL user, the CA."""
        opts: dict[str, Any] = {}
        if self.redis_password:
            opts["username"] = self.redis_username or "default"
            opts["password"] = self.redis_password.reveal()
        if self.redis_ca_file:
            opts["ssl_ca_certs"] = self.redis_ca_file
        return opts

    # ----------------------------------------------------------- kafka configs
    def consumer_config(self, group: str | None = None, **extra: Any) -> dict[str, Any]:
        cfg = {
            **self.kafka_config(),
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
        cfg.update(extra)
        return cfg

    def producer_config(self, transactional: bool = False, **extra: Any) -> dict[str, Any]:
        cfg = {
            **self.kafka_config(),
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


TOPIC_NAMES = ("queries", "feedback", "predictions", "decisions", "outcomes", "model-updates", "dead-letter")


def _default_of(f) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_bool(raw: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` (any case); ValueError otherwise (``bool("false")`` is True).

    >>> parse_bool("True"), parse_bool("off")
    (True, False)
    """
    text = raw.strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"not a boolean: {raw!r}")


parse_bool.__name__ = "bool"  # argparse names the type in its one-line error


def _env_value(f, raw: str) -> Any:
    typ = type(_default_of(f))
    typ = parse_bool if typ is bool else typ
    try:
        return typ(raw)
    except ValueError:
        raise ConfigError(f"EDDY_{f.name.upper()} must be {typ.__name__}, got {raw!r}") from None


def _secret_fields() -> list:
    return [f for f in fields(Settings) if f.metadata.get("secret")]


def read_secret_file(path: str, label: str) -> Secret:
    """The password in ``path`` (one trailing newline dropped); a one-line :class:`ConfigError` naming
    ``label`` (the variable or flag) and the path, never the content, when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as fh:
            value = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{label}: cannot read {path!r}: {getattr(exc, 'strerror', None) or exc}") from None
    value = value[:-1] if value.endswith("\n") else value
    value = value[:-1] if value.endswith("\r") else value
    if not value:
        raise ConfigError(f"{label}: {path!r} is empty")
    return Secret(value)


def from_env(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(Settings):
        key = f"EDDY_{f.name.upper()}"
        if key in env:
            values[f.name] = _env_value(f, env[key])
    for f in _secret_fields():  # EDDY_<NAME>_FILE: the password in a file (a mounted secret)
        key = f"EDDY_{f.name.upper()}"
        if f"{key}_FILE" in env:
            if key in env:
                raise ConfigError(f"set {key} or {key}_FILE, not both")
            values[f.name] = read_secret_file(env[f"{key}_FILE"], f"{key}_FILE")
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    try:
        return Settings(**values).validated()
    except ConfigError as exc:  # name the variable the bad value came from
        if exc.setting in values and exc.setting not in given:
            raise exc.named(f"EDDY_{exc.setting.upper()}") from None
        raise


# A verb that talks to Kafka (Redis) also takes the settings that authenticate to it.
_COMPANIONS = {
    "bootstrap": ("kafka_security_protocol", "kafka_sasl_mechanism", "kafka_username", "kafka_password",
                  "kafka_ca_file"),
    "redis_url": ("redis_username", "redis_password", "redis_ca_file"),
}


def add_arguments(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """Add ``--<setting>`` flags; unset flags fall back to the environment, then defaults.

    A password gets no flag of its own, only ``--<name>-file``: a command line is
    visible to every user of the machine (``ps``), a file's mode is not.
    """
    if only is not None:
        only = tuple(only) + tuple(c for name in only for c in _COMPANIONS.get(name, ()))
    group = parser.add_argument_group("settings (flag > EDDY_<NAME> environment variable > default)")
    for f in fields(Settings):
        if only is not None and f.name not in only:
            continue
        flag, env = f"--{f.name.replace('_', '-')}", f"EDDY_{f.name.upper()}"
        if f.metadata.get("secret"):
            # --<name> itself is refused, not left free: argparse would read it as an abbreviation of
            # --<name>-file and then name the password as a path in its error.
            group.add_argument(flag, action=_RefusePassword, nargs="?", help=argparse.SUPPRESS)
            group.add_argument(f"{flag}-file", dest=f"{f.name}_file", default=None, metavar="PATH",
                               help=f"file holding the {f.metadata['help']} (env {env}_FILE, or the password "
                                    f"itself in {env})")
            continue
        default = _default_of(f)
        group.add_argument(
            flag,
            dest=f.name,
            type=parse_bool if isinstance(default, bool) else type(default),
            default=None,
            metavar=type(default).__name__.upper(),
            help=f"{f.metadata.get('help', '')} (default: {default}; env {env})",
        )


def settings_parent(only: tuple[str, ...]) -> argparse.ArgumentParser:
    """The ``only`` settings' flags as a parent parser of a verb's actions (``parents=[...]``), so that they work
    after the action too (``eddy models list --topic-prefix x.``); the verb's parser takes them before it
    (:func:`add_arguments`). Left unset after the action, a flag keeps the value given before it."""
    parent = argparse.ArgumentParser(add_help=False)
    add_arguments(parent, only=only)
    for action in parent._actions:
        action.default = argparse.SUPPRESS
    return parent


class _RefusePassword(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        env = f"EDDY_{self.dest.upper()}"
        parser.error(f"{option_string} is not accepted (a command line is visible to every user): "
                     f"set {env}, or {env}_FILE / {option_string}-file to a file holding it")


def from_args(args: argparse.Namespace) -> Settings:
    overrides = {f.name: getattr(args, f.name, None) for f in fields(Settings)}
    for f in _secret_fields():
        overrides[f.name] = None  # _RefusePassword's dest
        path = getattr(args, f"{f.name}_file", None)
        overrides[f.name] = read_secret_file(path, f"--{f.name.replace('_', '-')}-file") if path else None
    try:
        return from_env(**overrides)
    except ConfigError as exc:  # name the flag the bad value came from
        if overrides.get(exc.setting) is not None:
            raise exc.named(f"--{exc.setting.replace('_', '-')}") from None
        raise


def child_environment(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the ``EDDY_*`` variables that reproduce
    ``settings`` in a child process. Passwords travel as ``EDDY_<NAME>`` (a process's environment
    is readable only by its user), so ``EDDY_<NAME>_FILE`` is dropped: the child must not see both."""
    env = dict(os.environ if base is None else base)
    for f in fields(Settings):
        value = getattr(settings, f.name)
        env[f"EDDY_{f.name.upper()}"] = value.reveal() if isinstance(value, Secret) else str(value)
        env.pop(f"EDDY_{f.name.upper()}_FILE", None)
    return env


def redacted(client_config: dict[str, Any]) -> dict[str, Any]:
    """A Kafka client config fit to print: secrets replaced by ``***``."""
    return {k: ("***" if k in KAFKA_SECRET_KEYS else v) for k, v in client_config.items()}


__all__ = ["Settings", "Secret", "ConfigError", "from_env", "from_args", "add_arguments", "child_environment", "redacted",
           "TOPIC_NAMES", "replace"]
