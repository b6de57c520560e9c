"""Small helpers for integration tests: run workers as processes, read topics to an expected count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import fields

from stream import config
from stream.client import drain, reader


def worker_env(settings: config.Settings, **overrides) -> dict[str, str]:
    env = dict(os.environ)
    for f in fields(config.Settings):
        env[f"EDDY_{f.name.upper()}"] = str(overrides.get(f.name, getattr(settings, f.name)))
    return env


def start_worker(settings: config.Settings, log_path, **overrides) -> subprocess.Popen:
    fh = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], env=worker_env(settings, **overrides),
                            stdout=fh, stderr=subprocess.STDOUT)


def read_json(settings: config.Settings, name: str, *, n: int | None = None, timeout_s: float = 60.0,
              idle_s: float | None = None) -> list[dict]:
    """Every committed record of topic ``name`` from the beginning, until ``n`` are there."""
    c = reader(settings, [settings.topic(name)], from_beginning=True)
    try:
        msgs = drain(c, until=(lambda got: len(got) >= n) if n is not None else None, timeout_s=timeout_s,
                     idle_s=idle_s)
    finally:
        c.close()
    return [json.loads(m.value()) for m in msgs]


def read_dead_letters(settings: config.Settings, *, n: int, timeout_s: float = 60.0):
    c = reader(settings, [settings.topic("dead-letter")], from_beginning=True)
    try:
        return drain(c, until=lambda got: len(got) >= n, timeout_s=timeout_s)
    finally:
        c.close()


def wait_for(predicate, timeout_s: float = 60.0, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s")
