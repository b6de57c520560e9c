"""What a BatchWrite turns into in the real Redis (stream/store.py): each field under its partition's
keys with its expiry, read back by the store's own readers; releases, rewards and leases of later
batches. (Fencing is test_store_fencing.py.)

Each test's docstring names the bug it was checked to catch (planted by hand, seen failing).
"""

from __future__ import annotations

import time

import pytest

from stream import config
from stream.engine.state import BatchWrite
from stream.store import APPLIED_TTL_S, STATS_TTL_S, RedisStore, redis_client

pytestmark = pytest.mark.integration


def full_write() -> BatchWrite:
    return BatchWrite(
        decision_ttl_s=120.0,
        users={("v1", "alice"): (b"alice-state", 1), ("v1", "bob"): (b"bob-state", 2)},
        applied={"r1": (b"marker-1", 1)},
        outboxes={(1, "feedback:7"): b"outputs-1"},
        population={("v1", 1): b"pop-1", ("v1", 2): b"pop-2"},
        decisions={"r1": (b"join-1", 1), "r2": (b"join-2", 2)},
        policy=("vw", b"snapshot"),
        counts={"consumed": 3, "feedback_applied": 1},
        held={(2, "r9"): (b"early", 1000.0)},
        pending={(2, "r2"): 500.0, (1, "r3"): 400.0},
    )


def test_a_batch_write_lands_under_its_partitions_keys_with_its_expiries(settings):
    """Every field, raw: a state under another partition's key, a decision without its TTL (twice the
    join window) or a marker without its 7 days, a member set not updated (replay finds users through
    it), a held entry without its deadline in ``helddue``, would each pass a store that only reads back."""
    store = RedisStore.from_settings(settings)
    r, k, g = redis_client(settings), store.keys, settings.group
    assert store.commit(full_write(), group=g, epochs={}, instance="w7")
    assert r.get(k.user("v1", "alice", 1)) == b"alice-state" and r.get(k.user("v1", "bob", 2)) == b"bob-state"
    assert r.get(k.user("v1", "alice", 2)) is None
    assert r.smembers(k.users("v1", 1)) == {b"alice"} and r.smembers(k.users("v1", 2)) == {b"bob"}
    assert r.ttl(k.user("v1", "alice", 1)) == -1 and r.ttl(k.population("v1", 1)) == -1  # kept until deleted
    assert r.get(k.decision("r1", 1)) == b"join-1" and r.get(k.decision("r2", 2)) == b"join-2"
    assert 60 < r.ttl(k.decision("r2", 2)) <= 120
    assert r.get(k.applied("r1", 1)) == b"marker-1" and APPLIED_TTL_S - 3600 < r.ttl(k.applied("r1", 1)) <= APPLIED_TTL_S
    assert r.get(k.outbox("feedback:7", 1)) == b"outputs-1"  # its markers' outputs, as long as they might be
    assert APPLIED_TTL_S - 3600 < r.ttl(k.outbox("feedback:7", 1)) <= APPLIED_TTL_S
    assert r.get(k.population("v1", 2)) == b"pop-2"
    assert r.hgetall(k.held(2)) == {b"r9": b"early"} and r.zrange(k.held_due(2), 0, -1, withscores=True) == [(b"r9", 1000.0)]
    assert r.zrange(k.pending(2), 0, -1, withscores=True) == [(b"r2", 500.0)]
    assert r.zrange(k.pending(1), 0, -1, withscores=True) == [(b"r3", 400.0)]
    assert r.get(k.policy(g, "vw")) == b"snapshot"
    assert r.hgetall(k.stats(g, "w7")) == {b"consumed": b"3", b"feedback_applied": b"1"}
    assert STATS_TTL_S - 3600 < r.ttl(k.stats(g, "w7")) <= STATS_TTL_S


def test_a_marker_expires_when_the_deployment_says(settings):
    """``applied_ttl_s`` (``EDDY_APPLIED_TTL_S``) reaches the marker's expiry: a store that kept the 7-day
    constant would hold every applied feedback's marker for a week whatever the operator bounded."""
    store = RedisStore.from_settings(config.replace(settings, applied_ttl_s=5000.0))
    r, k = redis_client(settings), store.keys
    assert store.commit(full_write(), group=settings.group, epochs={}, instance="w7")
    assert 4000 < r.ttl(k.applied("r1", 1)) <= 5000 and 60 < r.ttl(k.decision("r1", 1)) <= 120
    assert 4000 < r.ttl(k.outbox("feedback:7", 1)) <= 5000


def test_the_stores_readers_find_what_a_write_wrote(settings):
    """The engine's StateReader side: a reader that built another key than the writer (the partition
    dropped, the version swapped) would make every user new and every feedback unknown."""
    store = RedisStore.from_settings(settings)
    assert store.commit(full_write(), group=settings.group, epochs={}, instance="w7")
    assert store.load_users("v1", {"alice": 1, "bob": 2, "carol": 1}) == {"alice": b"alice-state", "bob": b"bob-state"}
    assert store.load_users("v1", {"alice": 2}) == {} and store.load_users("v2", {"alice": 1}) == {}
    assert store.load_decisions({"r1": 1, "r2": 2, "r3": 1}) == {"r1": b"join-1", "r2": b"join-2"}
    assert store.load_applied({"r1": 1, "r2": 2}) == {"r1": b"marker-1"}
    # The batch's prefetch: the three reads in one MGET, each key built as its own reader builds it
    # (a request id that is both a decision and a marker, a user named like a request).
    assert store.load_together("v1", {"alice": 1, "bob": 1, "r1": 1}, {"r1": 1, "r2": 1}, {"r1": 1, "r2": 2}) == (
        {"alice": b"alice-state"}, {"r1": b"join-1"}, {"r1": b"marker-1"})
    assert store.load_together("v2", {}, {}, {}) == ({}, {}, {})
    assert store.load_outboxes([(1, "feedback:7"), (2, "feedback:7")]) == {(1, "feedback:7"): b"outputs-1"}
    store.delete_outboxes([(1, "feedback:7"), (2, "nothing")])  # committed: gone; one never written: no error
    assert store.load_outboxes([(1, "feedback:7")]) == {} and store.load_applied({"r1": 1}) == {"r1": b"marker-1"}
    assert store.load_held([(2, "r9"), (1, "r9"), (2, "r9")]) == {(2, "r9"): b"early"}
    assert store.held_count(2) == 1 and store.held_count(1) == 0
    assert store.expired_held(2, now=999.0, limit=10) == {} and store.expired_held(2, now=1000.0, limit=10) == {"r9": b"early"}
    assert store.due_pending(2, now=500.0, limit=10) == ["r2"] and store.due_pending(1, now=399.0, limit=10) == []
    assert store.load_population("v1", 1) == b"pop-1" and store.populations("v1", 4) == [b"pop-1", b"pop-2"]
    assert store.load_policy(settings.group, "vw") == b"snapshot"
    assert store.partitions_of_users("v1", ["bob", "alice", "nobody"], 4) == {"bob": 2, "alice": 1}


def test_releases_rewards_and_leases_of_a_later_batch(settings):
    """A released held entry leaves both the hash and ``helddue`` (else the sweep dead-letters applied
    feedback); a reward removes its pending entry; a lease moves only an entry still there (``xx``: a
    lease must not bring back a reward's removal); counters add up across batches."""
    store = RedisStore.from_settings(settings)
    r, k, g = redis_client(settings), store.keys, settings.group
    assert store.commit(full_write(), group=g, epochs={}, instance="w7")
    later = BatchWrite(released={(2, "r9")}, rewarded={(1, "r3")}, leased={(2, "r2"): 900.0, (1, "r3"): 950.0},
                       counts={"consumed": 2})
    assert store.commit(later, group=g, epochs={}, instance="w7")
    assert r.hgetall(k.held(2)) == {} and r.zcard(k.held_due(2)) == 0
    assert r.zrange(k.pending(2), 0, -1, withscores=True) == [(b"r2", 900.0)]
    assert r.zcard(k.pending(1)) == 0
    # a lease of a later batch still finds the reward's removal (the sweep re-scored it before the reward)
    assert store.commit(BatchWrite(leased={(1, "r3"): 990.0}), group=g, epochs={}, instance="w7")
    assert r.zcard(k.pending(1)) == 0
    assert store.read_stats(g)["w7"] == {"consumed": 5, "feedback_applied": 1}


def test_an_optimistic_write_whose_decision_is_stored_writes_nothing_and_names_it(settings):
    """``expect_new`` (an optimistic batch, decided without reading for stored decisions): a script that
    wrote the other keys before refusing, or refused nothing, would log a second decision for a request
    whose prediction was already shown; one that checked the wrong partition's key would never refuse."""
    from stream.engine.state import DecisionsExist

    store = RedisStore.from_settings(settings)
    r, k, g = redis_client(settings), store.keys, settings.group
    assert store.commit(BatchWrite(decisions={"r1": (b"first", 1)}), group=g, epochs={1: 0}, instance="w7")
    again = full_write()
    again.expect_new = True
    with pytest.raises(DecisionsExist) as err:
        store.commit(again, group=g, epochs={1: 0, 2: 0}, instance="w7")
    assert err.value.requests == [k.decision("r1", 1)]
    assert r.get(k.decision("r1", 1)) == b"first"
    assert r.get(k.decision("r2", 2)) is None and r.get(k.user("v1", "alice", 1)) is None
    assert r.hgetall(k.stats(g, "w7")) == {} and r.get(k.policy(g, "vw")) is None
    fresh = full_write()
    fresh.decisions = {"r2": (b"join-2", 2)}
    fresh.expect_new = True
    assert store.commit(fresh, group=g, epochs={1: 0, 2: 0}, instance="w7")
    assert r.get(k.decision("r2", 2)) == b"join-2" and r.get(k.user("v1", "alice", 1)) == b"alice-state"
    assert not store.commit(fresh, group=g, epochs={1: 5}, instance="w7")  # fencing still comes first


def test_an_optimistic_write_refuses_a_decision_whose_request_has_an_applied_marker(settings):
    """A request id used again after its decision expired, while its marker lives on: the engine joins an
    optimistic batch's feedback from memory on the word of this check that no marker exists
    (stream/engine/fresh.py), so a script that checked only the decision would let that feedback apply
    where the store's marker makes it a duplicate."""
    from stream.engine.state import DecisionsExist

    store = RedisStore.from_settings(settings)
    r, k, g = redis_client(settings), store.keys, settings.group
    assert store.commit(BatchWrite(applied={"r3": (b"old-marker", 2)}), group=g, epochs={2: 0}, instance="w7")
    reused = BatchWrite(decisions={"r3": (b"join-3", 2), "r4": (b"join-4", 2)}, expect_new=True)
    with pytest.raises(DecisionsExist) as err:
        store.commit(reused, group=g, epochs={2: 0}, instance="w7")
    assert err.value.requests == [k.applied("r3", 2)]
    assert r.get(k.decision("r3", 2)) is None and r.get(k.decision("r4", 2)) is None
    reused.expect_new = False  # the engine's careful retry writes it
    assert store.commit(reused, group=g, epochs={2: 0}, instance="w7")
    assert r.get(k.decision("r3", 2)) == b"join-3" and r.get(k.applied("r3", 2)) == b"old-marker"


def test_the_check_counts_keys_in_chunks_and_finds_one_past_the_first_thousand(settings):
    """The script asks EXISTS of 1,000 keys at a time (Lua's unpack has a stack limit): a key past the
    first chunk, or in the last partial one, must still refuse the write and be named."""
    from stream.engine.state import DecisionsExist

    store = RedisStore.from_settings(settings)
    r, k, g = redis_client(settings), store.keys, settings.group
    assert store.commit(BatchWrite(applied={"r1100": (b"m", 0)}), group=g, epochs={0: 0}, instance="w7")
    big = BatchWrite(decisions={f"r{i}": (b"j", 0) for i in range(1200)}, expect_new=True)  # 2,400 keys
    with pytest.raises(DecisionsExist) as err:
        store.commit(big, group=g, epochs={0: 0}, instance="w7")
    assert err.value.requests == [k.applied("r1100", 0)] and r.get(k.decision("r0", 0)) is None
    del big.decisions["r1100"]
    assert store.commit(big, group=g, epochs={0: 0}, instance="w7") and r.get(k.decision("r1199", 0)) == b"j"


def test_process_figures_are_read_by_instance_and_match_what_read_stats_finds(settings):
    """``process_figures`` (the benchmark's batch watch, once a second during a run) reads the named
    instances' published figures by key; an instance that published nothing is left out."""
    store, g = RedisStore.from_settings(settings), settings.group
    store.publish_stats(g, "w1", {"batch_limit": 32, "batches": 7, "batch_records": 21})
    store.publish_stats(g, "w2", {"batch_limit": 8, "batches": 1, "batch_records": 1})
    got = store.process_figures(g, ["w1", "w2", "never"])
    assert all(abs(f.pop("updated") - time.time()) < 60 for f in got.values())  # publish_stats stamps it
    assert got == {"w1": {"batch_limit": 32, "batches": 7, "batch_records": 21},
                   "w2": {"batch_limit": 8, "batches": 1, "batch_records": 1}}
    assert {i: {k: v for k, v in store.read_stats(g)[i].items() if k != "updated"} for i in got} == got
    assert store.process_figures(g, []) == {}
