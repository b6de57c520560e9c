"""Eddy against an authenticated stack: Kafka SASL_SSL (SCRAM-SHA-512) and Redis over TLS with an ACL user.

One secure stack (``deploy/stack up --secure``: a second broker JVM and a second
redis-server, free ports, a state dir of its own) serves the whole module and is
stopped at its end. The shared plaintext stack is not touched.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from learners import load_user_model
from stream import config
from stream.client import EddyClient
from stream.kafka_io import ensure_topics
from stream.simulator import SimulatedWorld
from stream.store import RedisStore

from .helpers import OwnStack, free_port, make_live, query_and_reward, wait_for, worker_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory):
    stack = OwnStack(tmp_path_factory.mktemp("secure"), secure=True)
    stack.env["EDDY_KAFKA_HEAP_OPTS"] = "-Xms128m -Xmx512m"
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
def secure_settings(secure_stack, tmp_path) -> config.Settings:
    prefix = f"s{uuid.uuid4().hex[:10]}."
    s = config.from_env(secure_stack.eddy_env(), topic_prefix=prefix, group=f"{prefix}workers", instance_id="w0",
                        model_dir=str(tmp_path / "models"), metrics_port=0)
    ensure_topics(s)
    return s


@pytest.fixture
def secure_model(secure_settings, trained_model_dir):
    from features.model import FeatureModel

    return make_live(secure_settings, FeatureModel.load(trained_model_dir))


def _password(settings: config.Settings) -> str:
    return settings.kafka_password.reveal()


def test_the_stack_refuses_anonymous_clients(secure_settings):
    import redis

    assert secure_settings.kafka_security_protocol == "sasl_ssl" and secure_settings.redis_url.startswith("rediss://")
    plain = secure_settings.redis_url.replace("rediss://", "redis://")
    with pytest.raises(redis.ConnectionError):  # TLS only: a plaintext client gets no answer
        redis.Redis.from_url(plain, socket_connect_timeout=2, socket_timeout=2).ping()
    anonymous = redis.Redis.from_url(secure_settings.redis_url, ssl_ca_certs=secure_settings.redis_ca_file)
    with pytest.raises(redis.AuthenticationError):  # the default user is off
        anonymous.ping()


def test_loop_runs_over_scram_and_acl_redis(secure_settings, secure_model, worker_thread):
    s = secure_settings
    world = SimulatedWorld(n_users=5, n_items=20, seed=4)
    client = EddyClient(s)
    with worker_thread(s):
        q = world.query(1, ts=time.time(), user=0, prefix="sec")
        pred, update = query_and_reward(s, client, q)
    assert pred["request_id"] == q.request_id and pred["versions"]["feature_net"] == secure_model.version
    assert update["user_id"] == q.user_id and update["version"] == 1
    store = RedisStore.from_settings(s)  # as the ACL user, over TLS
    raw = store.load_users(secure_model.version, store.partitions_of_users(secure_model.version, [q.user_id],
                                                                         s.partitions))[q.user_id]
    assert load_user_model(raw).n_obs == 1  # the feedback was applied in the ACL user's Redis


def _eddy(argv: list[str], env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout_s)


def _wrong(tmp_path, name: str) -> str:
    path = tmp_path / name
    path.write_text("not-the-password\n")
    return str(path)


@pytest.mark.parametrize("argv,variable,says", [
    (["topics"], "EDDY_KAFKA_PASSWORD_FILE", "Kafka authentication failed"),
    (["stats"], "EDDY_REDIS_PASSWORD_FILE", "Redis refused the credentials"),
])
def test_a_wrong_password_is_one_line_from_the_cli(secure_settings, tmp_path, argv, variable, says):
    env = worker_env(secure_settings)
    env.pop(variable.removesuffix("_FILE"))
    env[variable] = _wrong(tmp_path, "pw")
    out = _eddy(argv, env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"eddy {argv[0]}: {says}")
    assert "not-the-password" not in out.stderr


def test_a_broker_certificate_from_another_ca_is_one_line(secure_settings, tmp_path):
    other_ca = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other",
                    "-keyout", str(tmp_path / "other.key"), "-out", str(other_ca)], check=True, capture_output=True)
    out = _eddy(["topics"], worker_env(secure_settings, kafka_ca_file=other_ca))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("eddy topics: Kafka TLS failed") and "certificate verify failed" in out.stderr


def test_a_wrong_kafka_password_ends_the_worker_with_one_line(secure_settings, secure_model, tmp_path):
    env = worker_env(secure_settings)
    env.pop("EDDY_KAFKA_PASSWORD")
    env["EDDY_KAFKA_PASSWORD_FILE"] = _wrong(tmp_path, "pw")
    out = _eddy(["worker", "--max-seconds", "60"], env, timeout_s=120)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("eddy worker: Kafka authentication failed"), out.stderr
    assert "not-the-password" not in out.stderr


def _scrape(port: int) -> str | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    return text if "eddy_" in text else None


def test_passwords_stay_out_of_the_worker_log_and_metrics(secure_settings, secure_model, tmp_path):
    port = free_port()
    env = worker_env(secure_settings, kafka_debug="security", metrics_port=port)
    log = tmp_path / "worker.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker", "--max-seconds", "20"], env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
        try:
            metrics = wait_for(lambda: _scrape(port), timeout_s=90)
        finally:
            rc = proc.wait(timeout=120)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert "SASL" in text  # librdkafka's security debug log was on, and had the chance to leak it
    for secret in (_password(secure_settings), secure_settings.redis_password.reveal()):
        assert secret not in text and secret not in metrics
