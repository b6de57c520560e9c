"""The store's command packer: hiredis in one call, the same bytes as redis-py's own packer."""

from __future__ import annotations

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.exceptions import DataError

from stream.store import HiredisPacker, connect

pytestmark = pytest.mark.unit

redis_py = redis.Connection().pack_command
packer = HiredisPacker()

arguments = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=60),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.binary(max_size=40).map(memoryview),
    st.binary(max_size=40).map(bytearray),
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["SET", "EVALSHA", "MGET", "ZADD", "HSET"]), args=st.lists(arguments, max_size=12))
def test_it_writes_the_bytes_redis_py_writes(name, args):
    assert b"".join(packer.pack(name, *args)) == b"".join(redis_py(name, *args))


def test_a_command_of_several_words_is_split_as_redis_py_splits_it():
    ours = b"".join(packer.pack("CLIENT SETINFO", "LIB-NAME", "eddy"))
    assert ours == b"".join(redis_py("CLIENT SETINFO", "LIB-NAME", "eddy"))
    assert ours.startswith(b"*4\r\n$6\r\nCLIENT\r\n$7\r\nSETINFO\r\n")


@pytest.mark.parametrize("bad", [True, None, object()])
def test_a_type_redis_does_not_take_raises_redis_pys_error(bad):
    with pytest.raises(DataError):
        packer.pack("SET", "k", bad)


def test_a_standalone_client_packs_with_it():
    """Every connection the pool opens gets the packer (the pool passes its kwargs to each)."""
    for url in ("redis://127.0.0.1:6379/0", "unix:///tmp/none.sock"):
        client = connect(url)
        assert isinstance(client.connection_pool.connection_kwargs["command_packer"], HiredisPacker)
        assert isinstance(client.connection_pool.make_connection()._command_packer, HiredisPacker)


def test_the_packer_benchmark_compares_redis_pys_packer_with_the_stores():
    """``benchmarks.command_packer`` times two stores that differ in their packer only."""
    from benchmarks.command_packer import _stores
    from stream.config import Settings

    stores = _stores(Settings(), "packer-test.")
    theirs = stores["redis-py"]._r.connection_pool.make_connection()._command_packer
    ours = stores["hiredis"]._r.connection_pool.make_connection()._command_packer
    assert isinstance(ours, HiredisPacker) and not isinstance(theirs, HiredisPacker)
    assert b"".join(theirs.pack("SET", "k", b"v", "EX", 5)) == b"".join(ours.pack("SET", "k", b"v", "EX", 5))
