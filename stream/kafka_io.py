"""Kafka plumbing shared by the worker, the CLI, replay and benchmarks."""

from __future__ import annotations

import time
from typing import Iterable

from confluent_kafka import KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from features.errors import EddyError
from stream.config import TOPIC_NAMES, Settings

DEAD_LETTER_HEADERS = ("eddy.reason", "eddy.error", "eddy.source.topic", "eddy.source.partition", "eddy.source.offset")


class KafkaUnavailable(EddyError, RuntimeError):
    """The broker did not answer in time."""


def admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.bootstrap})


def wait_for_broker(settings: Settings, timeout_s: float = 10.0) -> AdminClient:
    client = admin(settings)
    try:
        client.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"no Kafka broker answered at {settings.bootstrap} within {timeout_s:.0f}s "
            f"(start it with: deploy/stack up): {exc.args[0]}"
        ) from None
    return client


def ensure_topics(settings: Settings, names: Iterable[str] = TOPIC_NAMES, timeout_s: float = 30.0) -> list[str]:
    """Create the deployment's topics if missing; returns the full names. Idempotent."""
    client = wait_for_broker(settings)
    wanted = [settings.topic(n) for n in names]
    existing = client.list_topics(timeout=10).topics
    missing = [t for t in wanted if t not in existing]
    if missing:
        futures = client.create_topics(
            [NewTopic(t, num_partitions=settings.partitions, replication_factor=1) for t in missing],
            operation_timeout=timeout_s,
        )
        for topic, fut in futures.items():
            try:
                fut.result(timeout=timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != 36:  # TOPIC_ALREADY_EXISTS: another process won the race
                    raise
    _wait_for_metadata(client, wanted, timeout_s)
    return wanted


def _wait_for_metadata(client: AdminClient, topics: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        md = client.list_topics(timeout=5).topics
        if all(t in md and md[t].partitions and not md[t].error
               and all(pm.leader >= 0 and not pm.error for pm in md[t].partitions.values()) for t in topics):
            return
        if time.monotonic() > deadline:
            raise KafkaUnavailable(f"topics {topics} not ready after {timeout_s}s")
        time.sleep(0.05)


def delete_topics(settings: Settings, topics: list[str]) -> None:
    client = admin(settings)  # held until the futures resolve: a temporary is destroyed at once (_DESTROY)
    futures = client.delete_topics(topics, operation_timeout=30)
    for fut in futures.values():
        try:
            fut.result(timeout=30)
        except KafkaException:
            pass


def partition_count(settings: Settings, topic: str) -> int:
    md = admin(settings).list_topics(topic, timeout=10).topics.get(topic)
    return len(md.partitions) if md and not md.error else 0


def dead_letter(producer: Producer, topic: str, msg: Message, reason: str, error: str) -> None:
    """Send ``msg``'s original key and bytes to ``topic`` with where it came from and why."""
    headers = [
        ("eddy.reason", reason.encode()),
        ("eddy.error", error[:1000].encode()),
        ("eddy.source.topic", (msg.topic() or "").encode()),
        ("eddy.source.partition", str(msg.partition()).encode()),
        ("eddy.source.offset", str(msg.offset()).encode()),
    ]
    producer.produce(topic, value=msg.value(), key=msg.key(), headers=headers)


def headers_dict(msg: Message) -> dict[str, str]:
    return {k: (v or b"").decode(errors="replace") for k, v in (msg.headers() or [])}
