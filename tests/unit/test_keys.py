"""Redis key names (stream/keys.py): every key of one partition in one cluster slot, every key under
the deployment's prefix, and the old untagged names mapped onto the tagged ones.

Each test's docstring names the bug it was checked to catch (planted by hand, seen failing).
"""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from stream.keys import Keys

pytestmark = pytest.mark.unit

K = Keys("t1.")


def partition_keys(k: Keys, p: int) -> list[str]:
    return [k.user("v1", "alice", p), k.users("v1", p), k.decision("r1", p), k.applied("r1", p), k.held(p),
            k.held_due(p), k.pending(p), k.population("v1", p), k.epoch("g", p)]


def test_every_key_of_a_partition_is_in_its_slot_and_no_other_partitions():
    """A batch's WATCH/MULTI/EXEC on one partition must not cross slots (Redis Cluster refuses it);
    a key that lost its ``{pN}`` tag (or tagged another partition) would break every cluster commit."""
    for p in range(8):
        slots = {key_slot(key.encode()) for key in partition_keys(K, p)}
        assert slots == {key_slot(f"p{p}".encode())}
    assert len({key_slot(f"p{p}".encode()) for p in range(8)}) == 8  # the partitions spread over slots


def test_keys_name_what_they_hold_under_the_prefix():
    """The exact layout (docs/design.md, "Redis Cluster"): a renamed key orphans every deployment's state."""
    assert partition_keys(K, 3) == [
        "t1.{p3}:user:v1:alice", "t1.{p3}:users:v1", "t1.{p3}:decision:r1", "t1.{p3}:applied:r1", "t1.{p3}:held",
        "t1.{p3}:helddue", "t1.{p3}:pending", "t1.{p3}:pop:v1", "t1.{p3}:epoch:g"]
    assert [K.policy("g", "vw"), K.stats("g", "w0"), K.process_stats("g", "w0"), K.registry("live")] == [
        "t1.policy:g:vw", "t1.stats:g:w0", "t1.procstats:g:w0", "t1.{registry}:live"]


@pytest.mark.parametrize("old, new", [
    ("t1.users:v1:3", "t1.{p3}:users:v1"),
    ("t1.pop:v1:0", "t1.{p0}:pop:v1"),
    ("t1.epoch:grp:with:colons:12", "t1.{p12}:epoch:grp:with:colons"),
    ("t1.user:v1:alice:x", "t1.{p2}:user:v1:alice:x"),
    ("t1.decision:r:9", "t1.{p1}:decision:r:9"),
    ("t1.applied:r:9", "t1.{p1}:applied:r:9"),
    ("t1.registry:live", "t1.{registry}:live"),
    # not placeable, or not an old name: left alone
    ("t1.users:v1:x", None), ("t1.users:3", None), ("t1.user:v1:bob", None), ("t1.decision:other", None),
    ("t2.users:v1:3", None), ("t1.{p3}:users:v1", None), ("t1.policy:g:vw", None), ("t1.stats:g:w0", None),
])
def test_untagged_names_map_to_their_tagged_partition(old, new):
    """The migration (``eddy migrate-keys``): a wrong partition or a key of another deployment renamed
    would move state where no worker reads it."""
    assert K.untagged_to_tagged(old, {("v1", "alice:x"): 2}, {"r:9": 1}) == new
