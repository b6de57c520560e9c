"""Shared fixtures. Integration tests use the real broker and Redis from ``deploy/stack up``:
each test gets its own topic prefix (so its own topics and Redis keys) and cleans up after itself."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest

from stream import config

# --doctest-modules imports every module under tests/. Not these: a faust app that
# test_stack.py runs as a subprocess (configured by environment variables at import),
# and a plugin only mutmut loads.
collect_ignore = ["integration/faust_echo_app.py", "mutmut_pytest9.py"]

BOOTSTRAP = os.environ.get("EDDY_BOOTSTRAP", "127.0.0.1:9092")
REDIS_URL = os.environ.get("EDDY_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors gain nothing from threads; on a busy CI box extra threads only add stalls.
    A module asks for it with ``pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def stack():
    """Fail (never skip) when the stack is down: integration tests prove the real thing."""
    import redis
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(timeout=10)
    except Exception as exc:  # noqa: BLE001 - reported as the failure reason
        pytest.fail(f"no Kafka broker at {BOOTSTRAP} (run deploy/stack up): {exc}")
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"no Redis at {REDIS_URL} (run deploy/stack up): {exc}")
    return {"bootstrap": BOOTSTRAP, "redis_url": REDIS_URL}


@pytest.fixture
def settings(stack, tmp_path: Path) -> config.Settings:
    """Settings with a unique topic prefix, created topics, and clean-up of topics and keys."""
    import redis

    from stream.kafka_io import delete_topics, ensure_topics

    prefix = f"t{uuid.uuid4().hex[:10]}."
    s = config.from_env(
        {},
        bootstrap=stack["bootstrap"],
        redis_url=stack["redis_url"],
        topic_prefix=prefix,
        partitions=4,
        group=f"{prefix}workers",
        instance_id="w0",
        model_dir=str(tmp_path / "models"),
        join_window_s=600.0,
        metrics_port=0,  # tests run many workers at once; a test that scrapes picks a free port
    )
    topics = ensure_topics(s)
    yield s
    delete_topics(s, topics)
    r = redis.Redis.from_url(stack["redis_url"])
    keys = list(r.scan_iter(f"{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i : i + 500])


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory) -> Path:
    """A small feature net trained on simulator data, saved once per session."""
    from features.train import train_feature_net
    from stream.simulator import SimulatedWorld

    examples = SimulatedWorld(n_users=50, n_items=30, seed=3).training_examples(3000)
    model = train_feature_net(examples, epochs=2, progress=False, version="v1", seed=0)
    out = tmp_path_factory.mktemp("model") / "v1"
    model.save(out)
    return out


@pytest.fixture
def live_model(settings, trained_model_dir):
    """Register the session's model in this test's registry and make it live."""
    from features.model import FeatureModel
    from tests.integration.helpers import make_live

    return make_live(settings, FeatureModel.load(trained_model_dir))


class WorkerThread:
    """An in-process worker on a thread (fast start; use a subprocess to test crashes)."""

    def __init__(self, settings: config.Settings):
        from stream.worker import Worker

        self.worker = Worker(settings)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self.error = exc

    def __enter__(self) -> "WorkerThread":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.worker.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "worker did not stop within 30 s"
        if self.error:
            raise self.error

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def worker_thread():
    return WorkerThread
