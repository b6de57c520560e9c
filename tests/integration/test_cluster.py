"""Eddy unchanged against a real Redis Cluster of three masters (deploy/redis-cluster on free ports).

The session starts its own cluster and stops it at the end. This module's
``settings`` is the usual one (topics, unique prefix) pointed at the cluster
(``redis+cluster://``), so the tests imported below are the standalone ones,
run again here: the loop, the SIGKILL crash test and a rebalance.
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
from pathlib import Path

import pytest

from stream.store import RedisStore

from .test_held_feedback import (  # noqa: F401 - held feedback's keys live in the partition's slot
    test_early_feedback_is_held_then_applied_once_across_a_crash,
)
from .test_loop import (  # noqa: F401 - collected here too, against the cluster
    test_duplicate_and_late_feedback_are_dead_lettered_and_unknown_is_held,
    test_feedback_changes_weights_and_the_next_prediction,
)
from .test_recovery import (  # noqa: F401
    test_second_worker_joining_and_first_leaving_keep_every_users_state,
    test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice,
)

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "redis-cluster"


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(n: int) -> list[int]:
    """``n`` ports free on loopback whose cluster-bus port (+10000) is free too."""
    found: list[int] = []
    with socket.socket() as s:  # start where the kernel says a port is free, then step
        s.bind(("127.0.0.1", 0))
        start = 20000 + s.getsockname()[1] % 25000
    for port in range(start, 55535):
        if _bindable(port) and _bindable(port + 10000):
            found.append(port)
            if len(found) == n:
                return found
    raise RuntimeError("no free ports for a Redis Cluster")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> str:
    """A three-master Redis Cluster for the session: its URL."""
    ports = ",".join(map(str, _free_ports(3)))
    state = tmp_path_factory.mktemp("redis-cluster")
    args = ["--dir", str(state), "--ports", ports]
    up = subprocess.run([str(SCRIPT), "up", *args], capture_output=True, text=True, timeout=180)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield f"redis+cluster://127.0.0.1:{ports.split(',')[0]}"
    finally:
        subprocess.run([str(SCRIPT), "down", *args], capture_output=True, timeout=60)


@pytest.fixture
def settings(settings, redis_cluster):
    """The test's settings (unique topics and key prefix) with the cluster as its Redis."""
    clustered = dataclasses.replace(settings, redis_url=redis_cluster)
    yield clustered
    RedisStore.from_settings(clustered).delete_deployment()


def test_the_cluster_spreads_partitions_over_its_masters_and_each_batch_stays_in_one_slot(settings, redis_cluster):
    """The premise of the tests above: partitions' keys land on different masters, one slot each."""
    import redis

    r = redis.RedisCluster.from_url(redis_cluster.replace("redis+cluster", "redis"))
    k = RedisStore.from_settings(settings).keys
    masters = {r.get_node_from_key(k.epoch(settings.group, p)).name for p in range(settings.partitions * 4)}
    assert len(masters) == 3
    for p in range(settings.partitions):
        slots = {r.keyslot(key) for key in (k.user("v1", "u", p), k.users("v1", p), k.decision("r", p),
                                             k.applied("r", p), k.population("v1", p), k.epoch(settings.group, p),
                                             k.selection(p))}
        assert len(slots) == 1, (p, slots)
    assert len({r.keyslot(k.registry(n)) for n in ("live", "history", "versions", "counter")}) == 1


def test_a_fence_on_one_partition_keeps_the_others_and_counts_nothing(settings):
    """One transaction per partition: what a re-read then finds (docs/design.md, Redis Cluster)."""
    from stream.store import BatchWrite

    store = RedisStore.from_settings(settings)
    mine = store.claim(settings.group, range(4))
    store.claim(settings.group, [2])  # another worker took partition 2
    write = BatchWrite(users={("v1", f"u{p}"): (b"state", p) for p in range(4)},
                       decisions={f"r{p}": (b"record", p) for p in range(4)}, counts={"consumed": 4, "predictions": 4},
                       selection={p: b"selector %d" % p for p in range(4)})
    assert not store.commit(write, group=settings.group, epochs=mine, instance="w0")
    assert store.load_users("v1", {f"u{p}": p for p in range(4)}) == {f"u{p}": b"state" for p in (0, 1, 3)}
    assert store.selections(4) == {p: b"selector %d" % p for p in (0, 1, 3)}  # model selection's state, per slot
    assert set(store.load_decisions({f"r{p}": p for p in range(4)})) == {"r0", "r1", "r3"}
    assert store.read_stats(settings.group) == {}  # the counters follow only a whole batch
    assert store.commit(write, group=settings.group, epochs=store.epochs(settings.group, list(range(4))), instance="w0")
    assert len(store.load_users("v1", {f"u{p}": p for p in range(4)})) == 4
    assert store.read_stats(settings.group) == {"w0": {"consumed": 4, "predictions": 4}}


def test_the_learner_roles_commit_and_the_reward_sums_run_on_a_cluster(settings):
    """The learner's snapshot and epoch share a slot ({learner}); reward accumulators live in their partition's."""
    from stream.store import BatchWrite

    store = RedisStore.from_settings(settings)
    epoch = store.claim_learner(settings.group, "vw")
    assert store.commit_learner(settings.group, "vw", epoch, {"version": 1, "snapshot": b"blob"})
    assert store.learner_snapshot(settings.group, "vw") == (1, b"blob")
    store.claim_learner(settings.group, "vw")  # another learner took over
    assert not store.commit_learner(settings.group, "vw", epoch, {"version": 2, "snapshot": b"stale"})
    assert store.learner_snapshot(settings.group, "vw") == (1, b"blob")
    sums = {(p, f"r{p}"): {f"t:{p}:7": b"summand"} for p in range(4)}
    epochs = store.claim(settings.group, range(4))
    assert store.commit(BatchWrite(reward_sums=sums), group=settings.group, epochs=epochs, instance="w0")
    assert store.load_reward_sums(list(sums)) == sums
    assert store.commit(BatchWrite(sums_closed={(0, "r0")}), group=settings.group, epochs=epochs, instance="w0")
    assert set(store.load_reward_sums(list(sums))) == {(1, "r1"), (2, "r2"), (3, "r3")}
