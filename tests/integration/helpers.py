"""Small helpers for integration tests: run workers as processes, read topics to an expected count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from stream import config
from stream.client import drain, reader


def worker_env(settings: config.Settings, **overrides) -> dict[str, str]:
    env = config.child_environment(settings)
    env.update({f"EDDY_{name.upper()}": str(value) for name, value in overrides.items()})
    return env


def make_live(settings: config.Settings, model):
    """``model`` (a FeatureModel) registered in the registry of ``settings`` and promoted: the live feature net."""
    from stream.store import open_registry

    registry = open_registry(settings)
    registry.register(model, {"source": "test"})
    registry.promote(model.version)
    return model


def query_and_reward(settings: config.Settings, client, query) -> tuple[dict, dict]:
    """``query``'s prediction and the model update made by rewarding its first chosen item 1.0: one round
    through a running worker, read from the topics (the first prediction and update there)."""
    from stream import events

    client.send(query)
    client.flush()
    [prediction] = read_json(settings, "predictions", n=1)
    client.send(events.Feedback(query.request_id, query.user_id, prediction["chosen"][0], 1.0, time.time()))
    client.flush()
    [update] = read_json(settings, "model-updates", n=1)
    return prediction, update


def start_worker(settings: config.Settings, log_path, **overrides) -> subprocess.Popen:
    fh = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], env=worker_env(settings, **overrides),
                            stdout=fh, stderr=subprocess.STDOUT)


def terminate(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if ``proc`` has not exited within ``timeout_s``; returns once it has exited."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


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


class OwnStack:
    """A broker and a Redis of the test's own (``deploy/stack`` with its own state dir and free ports),
    for tests that kill the broker: killing the shared one would disturb every other test."""

    def __init__(self, state_dir, *, secure: bool = False):
        from pathlib import Path

        self.repo = Path(__file__).resolve().parents[2]
        self.env = {**os.environ, "EDDY_STATE_DIR": str(state_dir), "EDDY_KAFKA_PORT": str(free_port()),
                    "EDDY_KAFKA_CONTROLLER_PORT": str(free_port()), "EDDY_REDIS_PORT": str(free_port()),
                    "EDDY_SECURE": "1" if secure else "0"}
        self.state_dir = Path(state_dir)

    def eddy_env(self) -> dict[str, str]:
        """The secure stack's EDDY_* settings (``<state>/secrets/eddy.env``, written by ``up``)."""
        lines = (self.state_dir / "secrets" / "eddy.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.env['EDDY_KAFKA_PORT']}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.env['EDDY_REDIS_PORT']}/0"

    def up(self) -> None:
        out = subprocess.run([str(self.repo / "deploy" / "stack"), "up"], env=self.env, timeout=300,
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    def down(self) -> None:
        subprocess.run([str(self.repo / "deploy" / "stack"), "down"], env=self.env, timeout=120,
                       capture_output=True)

    def broker_pid(self) -> int:
        return int((self.state_dir / "kafka" / "kafka.pid").read_text().strip())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
