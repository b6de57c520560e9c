"""Redis in the benchmarks: a system's fsync policy is in force while it runs and restored after, the
stalls Redis's latency monitor saw come back in the report, and the durability benchmark runs."""

from __future__ import annotations

import contextlib
import time

import pytest
import redis

from benchmarks.redis_watch import RedisWatch, describe, step_stalls
from benchmarks.systems import BenchError
from benchmarks.users import settle_persistence

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def user_without(url: str, command: str):
    """A client of the real Redis as an ACL user refused ``command``, as a managed Redis may refuse it."""
    admin = redis.Redis.from_url(url)
    name = f"eddy-test-no-{command}"
    admin.acl_setuser(name, enabled=True, passwords=["+secret"], keys=["*"], commands=["+@all", f"-{command}"])
    try:
        yield redis.Redis.from_url(url, username=name, password="secret")
    finally:
        admin.acl_deluser(name)


# Busy for 30 ms inside Redis (DEBUG SLEEP is refused over TCP by default).
_BUSY_30_MS = """
local t = redis.call('TIME')
local start = t[1] * 1e6 + t[2]
repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - start >= 30000
return 1
"""


def test_a_system_runs_under_its_own_fsync_policy_and_the_stacks_comes_back(stack):
    client = redis.Redis.from_url(stack["redis_url"])
    before = client.config_get("appendfsync")["appendfsync"]
    threshold = client.config_get("latency-monitor-threshold")["latency-monitor-threshold"]
    other = "always" if before != "always" else "no"
    watch = RedisWatch(client, appendfsync=other)
    watch.start()
    try:
        assert client.config_get("appendfsync")["appendfsync"] == other
        t0 = time.time()
        client.eval(_BUSY_30_MS, 0)  # a 30 ms stall the latency monitor must see
        t1 = time.time()
    finally:
        watch.stop()
    assert watch.stalls(t0, t1)["command"] >= 30  # told by the step it fell in
    assert watch.stalls(t0 - 60, t0 - 2) == {} and watch.stalls(t1 + 2, t1 + 60) == {}
    assert step_stalls(watch.stalls(t0, t1)).endswith(" (command)")
    assert client.config_get("appendfsync")["appendfsync"] == before
    assert client.config_get("latency-monitor-threshold")["latency-monitor-threshold"] == threshold
    report = watch.report()
    assert report["appendfsync"] == other
    assert report["events"]["command"]["max_ms"] >= 30
    line = describe(report)
    assert f"`appendfsync {other}`" in line and "`command` in 1 s" in line


def test_an_aof_rewrite_is_told_by_the_step_it_ran_in(stack):
    client = redis.Redis.from_url(stack["redis_url"])
    if client.info("persistence").get("aof_enabled") in (0, "0"):
        pytest.skip("this Redis keeps no AOF")
    watch = RedisWatch(client)
    watch.start()
    try:
        settle_persistence(client)  # waits out one already running, then rewrites and waits for it
        t1 = time.time()
    finally:
        watch.stop()
    spans = watch.rewrites(t1 - 60, t1)
    assert spans and all(seconds >= 0 for _, seconds in spans)
    assert watch.rewrites(t1 + 1, t1 + 60) == []
    assert watch.report()["aof_rewrites"]["count"] == len(watch.rewrites(0, t1 + 60)) >= 1
    assert "; AOF rewrite " in step_stalls({}, spans)


def test_a_long_rewrite_is_one_span_from_its_start_to_its_end(stack):
    # Redis counts a rewrite when it starts, and the watch sees it running: one span, not two.
    client = redis.Redis.from_url(stack["redis_url"])
    if client.info("persistence").get("aof_enabled") in (0, "0"):
        pytest.skip("this Redis keeps no AOF")
    settle_persistence(client)
    client.set("eddy-test:rewrite-watch", b"x")
    delay_us = max(1, int(1_000_000 / client.dbsize()))  # the child sleeps per key: about a second in all
    before = client.config_get("rdb-key-save-delay")["rdb-key-save-delay"]
    watch = RedisWatch(client)
    watch.start()
    try:
        client.config_set("rdb-key-save-delay", delay_us)
        t0 = time.time()
        settle_persistence(client)
        t1 = time.time()
    finally:
        client.config_set("rdb-key-save-delay", before)
        watch.stop()
        client.delete("eddy-test:rewrite-watch")
    spans = watch.rewrites(t0, t1)
    assert len(spans) == 1, spans
    start, seconds = spans[0]
    assert -0.5 <= start <= 0.5 and 0.5 <= seconds <= t1 - t0 + 0.5


def test_a_redis_that_refuses_config_still_runs_the_system_and_the_report_says_so(stack):
    # A managed Redis refuses CONFIG; here a real one does, for an ACL user without it.
    with user_without(stack["redis_url"], "config") as client:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.config_get("appendfsync")
        watch = RedisWatch(client)
        watch.start()
        watch.stop()
        assert "stalls not recorded" in describe(watch.report())
        # A system that exists to compare fsync policies cannot run there, and says why.
        with pytest.raises(BenchError, match="needs appendfsync always"):
            RedisWatch(client, appendfsync="always").start()


def test_the_durability_benchmark_times_a_commit_under_each_policy(tmp_path):
    import json

    from benchmarks import redis_durability

    assert redis_durability.main(["--batches", "3", "--output-dir", str(tmp_path)]) == 0
    [path] = tmp_path.glob("redis-durability-*.json")
    result = json.loads(path.read_text())["ms_per_commit"]
    assert set(result) == {"1", "16", "256"}
    assert all(set(r) == {"no", "everysec", "always"} and r["always"]["50"] > 0 for r in result.values())


def test_the_users_benchmark_rewrites_the_aof_with_the_users_before_timing(stack):
    from benchmarks.users import settle_persistence

    client = redis.Redis.from_url(stack["redis_url"])
    prefix = "test-aof-settle:"
    delay = client.config_get("rdb-key-save-delay")["rdb-key-save-delay"]
    client.config_set("rdb-key-save-delay", 1000)  # 1 ms per key: the rewrite takes a few tenths of a second
    try:
        client.mset({f"{prefix}{i}": b"x" for i in range(300)})
        rewrites = int(client.info("persistence")["aof_rewrites"])
        client.bgrewriteaof()  # one already running, as the bulk write sets off: it may miss the last writes
        assert int(client.info("persistence")["aof_rewrite_in_progress"])
        waited = settle_persistence(client)
        info = client.info("persistence")
        assert int(info["aof_rewrites"]) == rewrites + 2  # that one, then one started after every write
        assert not int(info["aof_rewrite_in_progress"]) and not int(info["aof_rewrite_scheduled"])
        assert int(info["aof_current_size"]) == int(info["aof_base_size"])  # nothing left to double
        assert waited >= 0.3
    finally:
        client.config_set("rdb-key-save-delay", delay)
        client.delete(*[f"{prefix}{i}" for i in range(300)])


def test_a_redis_that_refuses_bgrewriteaof_still_runs_the_users_step(stack):
    from benchmarks.users import settle_persistence

    with user_without(stack["redis_url"], "bgrewriteaof") as client:
        assert settle_persistence(client) is None  # the report shows "-" for it
