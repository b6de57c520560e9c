"""Upgrading a standalone Redis from the key layout before hash tags: `eddy migrate-keys`."""

from __future__ import annotations

import re
import time

import pytest
import redis

from stream import cli
from stream.client import EddyClient
from stream.simulator import SimulatedWorld

from .helpers import query_and_reward

pytestmark = pytest.mark.integration

_TAGGED = re.compile(r"\{p(\d+)\}:(user|users|pop|epoch|decision|applied):(.*)")


def _untagged(prefix: str, key: str) -> str:
    """The name the layout before hash tags gave ``key`` (written out here, as that code had it)."""
    rest = key[len(prefix):]
    if rest.startswith("{registry}:"):
        return prefix + "registry:" + rest[len("{registry}:"):]
    m = _TAGGED.fullmatch(rest)
    if m is None:
        return key  # policy, stats, procstats: unchanged
    p, kind, tail = m.groups()
    return prefix + (f"{kind}:{tail}:{p}" if kind in ("users", "pop", "epoch") else f"{kind}:{tail}")


def test_migrate_keys_turns_an_untagged_deployment_into_the_tagged_one(settings, live_model, worker_thread, capsys):
    world = SimulatedWorld(n_users=5, n_items=20, seed=4)
    client = EddyClient(settings)
    with worker_thread(settings):
        query_and_reward(settings, client, world.query(1, ts=time.time(), user=0, prefix="mig"))
    r = redis.Redis.from_url(settings.redis_url)
    prefix = settings.topic_prefix
    tagged = {k.decode(): r.dump(k) for k in r.scan_iter(f"{prefix}*")}
    kinds = {m.group(2) for k in tagged if (m := _TAGGED.fullmatch(k[len(prefix):]))}
    assert kinds == {"user", "users", "pop", "epoch", "decision", "applied"}
    for key in tagged:  # back to the old layout, as an older Eddy left it
        if _untagged(prefix, key) != key:
            r.rename(key, _untagged(prefix, key))
    assert not any("{" in k.decode() for k in r.scan_iter(f"{prefix}*"))

    args = ["migrate-keys", "--redis-url", settings.redis_url, "--topic-prefix", prefix]
    assert cli.main(args) == 0
    assert f"renamed {sum(_untagged(prefix, k) != k for k in tagged)}, kept 0" in capsys.readouterr().out
    after = {k.decode(): r.dump(k) for k in r.scan_iter(f"{prefix}*")}
    assert after == tagged  # every key back under its tagged name, every value as it was
    assert cli.main(args) == 0 and "renamed 0" in capsys.readouterr().out  # a second run changes nothing
