"""Kafka plumbing shared by the worker, the CLI, replay and benchmarks."""

from __future__ import annotations

import logging
import socket
import time
from typing import Iterable

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from features.errors import EddyError
from stream.config import TOPIC_NAMES, Settings

_LIBRDKAFKA_LOG = logging.getLogger("eddy.librdkafka")


class KafkaUnavailable(EddyError, ConnectionError):
    """The broker did not answer in time (an outage or a wrong address, not a bad record)."""


class KafkaAuthFailed(EddyError, PermissionError):
    """The broker refused this client's credentials, or the TLS handshake failed: a setting to fix,
    not an outage to wait out."""


class TopicMissing(EddyError, ValueError):
    """A topic Eddy reads does not exist (yet)."""


def quiet_logging() -> dict:
    """Client settings that send librdkafka's log and errors to the ``eddy.librdkafka`` logger.

    Left to itself librdkafka prints every failed connection attempt to stderr
    (about 200 lines for a wrong bootstrap address before any timeout); the
    CLI shows that logger only with ``-v`` and reports the failure in one line.
    A refused password or a failed TLS handshake raises :class:`KafkaAuthFailed`
    from the client's next ``poll``/``consume``/``flush``: librdkafka would
    retry it forever, and no retry fixes a wrong password.
    """
    return {"logger": _LIBRDKAFKA_LOG, "error_cb": _on_error}


_NOT_RETRIABLE = {KafkaError._AUTHENTICATION: "authentication failed", KafkaError._SSL: "TLS failed"}


def _on_error(err: KafkaError) -> None:
    _LIBRDKAFKA_LOG.error("%s", err)
    what = _NOT_RETRIABLE.get(err.code())
    if what is not None:
        detail = err.str().split(" (after ")[0]  # drop librdkafka's "(after 334ms in state AUTH_REQ)"
        raise KafkaAuthFailed(f"Kafka {what}: {detail} (check EDDY_KAFKA_USERNAME, EDDY_KAFKA_PASSWORD[_FILE], "
                              "EDDY_KAFKA_CA_FILE, EDDY_KAFKA_SECURITY_PROTOCOL)")


def produce(producer: Producer, topic: str, value: bytes | None, *, key: bytes | None = None,
            headers: list[tuple[str, bytes]] | None = None, max_wait_s: float = 30.0, on_delivery=None,
            partition: int | None = None) -> None:
    """``producer.produce``, waiting while the local queue is full (BufferError): poll to let deliveries
    drain, then retry. Raises :class:`KafkaUnavailable` when the queue stays full for ``max_wait_s``."""
    deadline = None
    while True:
        try:
            if on_delivery is None and partition is None:  # the hot path: every output of every batch
                producer.produce(topic, value=value, key=key, headers=headers)
            else:
                extra = {k: v for k, v in (("on_delivery", on_delivery), ("partition", partition)) if v is not None}
                producer.produce(topic, value=value, key=key, headers=headers, **extra)
            return
        except BufferError:
            now = time.monotonic()
            deadline = deadline or now + max_wait_s
            if now > deadline:
                raise KafkaUnavailable(f"producer queue for {topic} still full after {max_wait_s:g}s: "
                                       "the broker is not taking records") from None
            producer.poll(0.01)


def publish_alone(producer: Producer, eos: bool,
                  records: list[tuple[str, int | None, bytes | None, bytes | None, list | None]]) -> None:
    """Publish ``(topic, partition, key, value, headers)`` records outside any commit span: in a Kafka
    transaction of their own (``eos``), or flushed. On failure the transaction is aborted and the error
    raised (:class:`KafkaException` or :class:`KafkaUnavailable`); the caller tries again later."""
    try:
        if eos:
            producer.begin_transaction()
        for topic, partition, key, value, headers in records:
            produce(producer, topic, value, key=key, headers=headers, partition=partition)
        if eos:
            producer.commit_transaction(30)
        elif producer.flush(30) > 0:
            raise KafkaUnavailable("records not delivered within 30 s")
    except (KafkaException, KafkaUnavailable):
        if eos:
            try:
                producer.abort_transaction(30)
            except KafkaException:
                pass  # the next batch's begin_transaction fails and the worker replaces the producer
        raise


def admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.admin_config(**quiet_logging()))


def wait_for_broker(settings: Settings, timeout_s: float = 5.0) -> AdminClient:
    """An admin client once the broker answers; :class:`KafkaUnavailable` (one line) after ``timeout_s``.

    A plain TCP probe comes first: it is quick, silent, and names the reason (refused, unknown host).
    """
    deadline = time.monotonic() + timeout_s
    why = _unreachable(settings.bootstrap)
    while why is not None and time.monotonic() < deadline:
        time.sleep(0.2)
        why = _unreachable(settings.bootstrap)
    if why is None:
        client = admin(settings)
        try:
            client.list_topics(timeout=max(0.5, deadline - time.monotonic()))
            return client
        except KafkaException as exc:  # something listens there, but not a Kafka broker that answers
            why = exc.args[0].str()
            client.poll(0)  # raises KafkaAuthFailed when the reason was a refused password or TLS
    raise KafkaUnavailable(f"no Kafka broker answered at {settings.bootstrap} within {timeout_s:g}s ({why}); "
                           "start it with: deploy/stack up")


def _unreachable(bootstrap: str) -> str | None:
    """None when some bootstrap address accepts a TCP connection, else why none does."""
    why = "no bootstrap address"
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
            return None
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
    return why


def ensure_topics(settings: Settings, names: Iterable[str] = TOPIC_NAMES, timeout_s: float = 30.0,
                  topic_config: dict[str, str] | None = None) -> list[str]:
    """Create the deployment's topics if missing (with ``topic_config``); returns the full names. Idempotent."""
    client = wait_for_broker(settings)
    wanted = [settings.topic(n) for n in names]
    existing = client.list_topics(timeout=10).topics
    missing = [t for t in wanted if t not in existing]
    if missing:
        futures = client.create_topics(
            [NewTopic(t, num_partitions=settings.partitions, replication_factor=1, config=topic_config or {})
             for t in missing],
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
    produce(producer, topic, msg.value(), key=msg.key(), headers=headers)


def headers_dict(msg: Message) -> dict[str, str]:
    return {k: (v or b"").decode(errors="replace") for k, v in (msg.headers() or [])}
