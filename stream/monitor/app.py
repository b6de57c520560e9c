"""The monitor's faust app: one agent and three changelog-backed tables.

``aggregate`` reads the decisions, outcomes and dead-letter topics (raw bytes,
decoded by :mod:`stream.events`) and adds each record's tallies
(:mod:`stream.monitor.figures`) into ``totals`` (since the start), ``tumbling``
and ``hopping`` (windowed by the record's Kafka timestamp: when the worker
wrote it).

Each table key is a grain (an arm, or a dead-letter reason) *in one source
partition* (``(2, "arm", "softmax", "softmax/1?temperature=0.5", "v3")``): a key
is only ever written while processing its own partition, so its changelog
partition holds its one true value, and the exporter sums partitions and grains
into figures. (A plain figure key, updated from every partition, would have a
last value in each changelog partition and recovery would keep an arbitrary
one; repartitioning by key through a topic instead breaks faust's exactly-once,
see docs/monitor.md.)

Processing is faust's ``exactly_once``: a partition's changelog writes and its
input offsets commit in one Kafka transaction, so a monitor killed at any
point restarts with every count exactly once (at-least-once would double-count
whatever it re-reads), and it reads only committed records (the worker's
aborted transactions are not counted).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import faust

from stream import events
from stream.config import ConfigError, Settings
from stream.monitor import figures
from stream.monitor.export import Snapshot

SOURCES = ("decisions", "outcomes", "dead-letter")
TABLES = ("totals", "tumbling", "hopping")


def expires_s(s: Settings) -> int:
    """How long a window is kept after it closes: ten lengths of the longer window."""
    return 10 * max(s.monitor_tumbling_s, s.monitor_hopping_s)


def app_id(s: Settings) -> str:
    """The faust app id: its consumer group and the prefix of its changelog topics."""
    return s.topic("monitor")


def window_names(s: Settings) -> tuple[str, str]:
    """The ``window`` label of the tumbling and the hopping table's figures."""
    return f"tumbling_{s.monitor_tumbling_s}s", f"hopping_{s.monitor_hopping_s}s_every_{s.monitor_hop_s}s"


def tallies_of(topic: str, s: Settings, value: bytes | None, headers) -> list[tuple[figures.Grain, figures.Tally]]:
    """A source record's tallies; a record that does not decode counts nowhere (the worker wrote it)."""
    try:
        if topic == s.topic("decisions"):
            return figures.decision_tallies(events.decode_decision(value))
        if topic == s.topic("outcomes"):
            return figures.outcome_tallies(events.decode_outcome(value))
    except events.EventError:
        return []
    reason = dict(headers or ()).get("eddy.reason", b"")
    return figures.dead_letter_tallies(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason))


def ensure_monitor_topics(s: Settings) -> int:
    """Create the sources and the (compacted) changelogs before faust starts; the partition count.

    The changelogs need the sources' partition count (a table is partitioned like
    the stream that writes it), and the sources must share one. faust creates
    changelogs itself, but subscribes at once: against this broker the fresh
    topics were sometimes not in the metadata yet, faust logged "Ignoring missing
    topic" and never read them. Created here, they are in the metadata first.
    """
    from dataclasses import replace

    from stream.kafka_io import ensure_topics, partition_count

    ensure_topics(s, SOURCES)
    counts = {name: partition_count(s, s.topic(name)) for name in SOURCES}
    if len(set(counts.values())) != 1:
        raise ConfigError(f"eddy monitor needs one partition count for {', '.join(s.topic(n) for n in SOURCES)}; "
                          f"they have {counts}")
    n = counts[SOURCES[0]]
    ensure_topics(replace(s, partitions=n), [f"monitor-{t}-changelog" for t in TABLES],
                  topic_config={"cleanup.policy": "compact"})
    return n


def broker_credentials(s: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    """faust's (aiokafka's) form of the Kafka settings every other client takes from ``Settings.kafka_config``."""
    protocol = s.kafka_security_protocol
    if protocol == "plaintext":
        return None
    context = ssl.create_default_context(cafile=s.kafka_ca_file or None) if protocol.endswith("ssl") else None
    if protocol.startswith("sasl_"):
        return faust.SASLCredentials(username=s.kafka_username, password=s.kafka_password.reveal(),
                                     ssl_context=context, mechanism=s.kafka_sasl_mechanism)
    return faust.SSLCredentials(context)


def build_app(s: Settings, datadir: Path, partitions: int, snapshot: Snapshot | None = None) -> faust.App:
    """The app; with ``snapshot``, a timer copies the tables into it every second for Prometheus."""
    app = faust.App(
        app_id(s),
        broker=[f"kafka://{b.strip()}" for b in s.bootstrap.split(",")],
        broker_credentials=broker_credentials(s),
        datadir=str(datadir),
        store="memory://",  # rebuilt from the changelogs at start: the tables are small (keys x windows)
        processing_guarantee="exactly_once",
        topic_partitions=partitions,
        topic_replication_factor=1,
        web_enabled=False,
        key_serializer="json",  # the tables' keys: tuples, and (tuple, (start, end)) in the windowed ones
        value_serializer="json",
        producer_linger_ms=1,
        consumer_auto_offset_reset="earliest",
        table_cleanup_interval=30.0,
        # The broker's minimum: a killed monitor's partitions are reassigned 6 s after its last heartbeat
        # (faust's default, 60 s, would hold a restarted monitor back for a minute).
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
    )
    sources = app.topic(*(s.topic(n) for n in SOURCES), key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw")

    def table(name: str):
        return app.Table(name, default=figures.empty, partitions=partitions)

    totals = table("totals")
    tumbling = table("tumbling").tumbling(s.monitor_tumbling_s, expires=expires_s(s))
    hopping = table("hopping").hopping(s.monitor_hopping_s, s.monitor_hop_s, expires=expires_s(s))

    @app.agent(sources)
    async def aggregate(stream):
        async for event in stream.events():
            m = event.message
            for grain, tally in tallies_of(m.topic, s, event.value, m.headers):
                key = figures.table_key(m.partition, grain)
                totals[key] = figures.merge(totals[key], tally)
                tumbling[key].apply(figures.merge, tally)
                hopping[key].apply(figures.merge, tally)

    if snapshot is not None:
        names = window_names(s)

        @app.timer(1.0)
        async def export():
            snapshot.refresh(figures.rolled_up(totals.data.items()),
                             [(names[0], figures.rolled_up(tumbling.table.data.items()).items()),
                              (names[1], figures.rolled_up(hopping.table.data.items()).items())])

    return app
