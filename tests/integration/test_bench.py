"""``python -m benchmarks --quick`` end to end on the real broker and Redis: the harness works.

No assertion on any time: quick mode proves the harness, it does not measure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from benchmarks.systems import SYSTEMS
from stream.config import REPO_ROOT

pytestmark = pytest.mark.integration

PERCENTILES = ("p50", "p95", "p99", "p99.9")


@pytest.mark.timeout(300)
def test_quick_benchmark_writes_every_system_and_metric(stack, tmp_path):
    prefix = f"tb{uuid.uuid4().hex[:8]}-"
    env = {**os.environ, "EDDY_BOOTSTRAP": stack["bootstrap"], "EDDY_REDIS_URL": stack["redis_url"]}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--output-dir", str(tmp_path),
                           "--topic-prefix", prefix], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    quick_systems = {s.name for s in SYSTEMS if s.redis_appendfsync is None}  # quick mode leaves eddy-eos-fsync out
    assert f"[1/{len(quick_systems)}]" in proc.stderr and "p99" in proc.stderr  # progress is shown

    [json_path] = list(tmp_path.glob("*-quick.json"))
    r = json.loads(json_path.read_text())
    assert r["quick"] is True and r["plan"]["feedback_ratio"] == 0.2
    for key in ("nproc", "cpu_model", "memory_gib", "kafka", "python", "packages"):
        assert r["machine"][key], key
    assert set(r["systems"]) == quick_systems
    for name, s in r["systems"].items():
        assert s["steps"], name
        for step in s["steps"]:
            assert step["sent"] > 0 and {"throughput", "send_lag_ms", "saturated"} <= set(step)
            assert set(PERCENTILES) <= set(step["latency_ms"]) and step["latency_ms"]["cdf"]
            t0, t1 = step["window"]  # when it ran, so Redis's stalls are told by step
            assert t0 < t1 and isinstance(step["redis_stalls_ms"], dict)
            # where the cores went (benchmarks/cpu_watch.py): the local broker and Redis found, every figure read
            cores = step["cpu_cores"]
            assert set(cores) == {"system", "generator", "broker", "redis", "other", "idle", "steal"}, (name, cores)
            assert all(v is not None and v >= 0 for v in cores.values()), (name, cores)
            assert cores["system"] > 0 and cores["generator"] > 0, (name, cores)  # both worked in every step
            # every core's time accounted for; not above: at a few hundred wake-ups a second the kernel's
            # tick-sampled busy time overcounts (docs/benchmarks.md), and the report marks such a step
            assert sum(cores.values()) >= r["machine"]["nproc"] - 0.5, (name, cores)
        assert s["config"], name
        if name != "http":
            assert "fetch.wait.max.ms" in s["config"]["consumer"] and "linger.ms" in s["config"]["producer"]
            assert "isolation.level" in s["config"]["consumer"] and "acks" in s["config"]["producer"]
        if name.startswith("floor"):
            assert "feedback_throughput" not in s
        else:
            assert s["feedback_throughput"]["updates"] > 0, name
            # one worker process: its CPU per update (in clock ticks: 300 quick updates may round to 0)
            cpu = s["feedback_throughput"]["worker_cpu_us_per_update"]
            assert (cpu is None) if name == "eddy-eos-2w" else (cpu is not None and cpu >= 0), name
            assert s["learning_latency_ms"]["observed"] > 0, name
        if name.startswith("eddy"):  # each applied feedback's marker in Redis, sampled and sized
            markers = s["applied_markers"]
            assert markers["markers_sampled"] > 0 and markers["bytes_per_marker"] > 100, name
            # the worker's batch sizes over the ramp (benchmarks/batch_watch.py): every step had batches
            assert s["batch_timeline"], name
            for step in s["steps"]:
                b = step["batch"]
                assert b["batches"] > 0 and b["mean_batch"] >= 1 and 1 <= b["limit_min"] <= b["limit_max"], (name, b)
        else:
            assert "batch_timeline" not in s, name
        assert "max_rate_p99_within_slo" in r["summary"]["systems"][name]
    assert r["systems"]["eddy-eos"]["redis"]["appendfsync"]  # the policy it ran under, and Redis's stalls
    assert isinstance(r["systems"]["eddy-eos"]["redis"]["events"], dict)
    assert r["systems"]["eddy-eos"]["config"]["producer"]["transaction.timeout.ms"] > 0
    assert "transaction.timeout.ms" not in r["systems"]["eddy-alo"]["config"]["producer"]
    assert r["summary"]["systems"]["eddy-eos"]["p50_minus_floor_ms"] is not None
    assert "vs_http_max_rate_ratio" in r["summary"]["systems"]["eddy-eos"]
    assert [u["users"] for u in r["users"]] == [1_000, 10_000]
    assert all(u["bytes_per_user_info"] > 0 and u["step"]["sent"] > 0 for u in r["users"])
    assert set(r["ope"]["estimators"]["estimators"]) >= {"ips", "snips", "dm", "dr", "sndr"}
    assert r["ope"]["kafka_log"]["decisions"] > 0
    ceiling = r["engine_ceiling"]  # the engine alone, on the run's own net: the bound of the targets table
    assert ceiling["n"] == 400 and ceiling["feedback_applied"] == 400
    assert all(v > 0 for v in ceiling["queries_per_cpu_s_median_batch"].values())
    assert r["profile"][0]["rate"] == 100  # the lowest rate, then the highest sustained one if higher
    for prof in r["profile"]:
        stages = {s["stage"] for s in prof["stages"]}
        assert any("feature net" in s for s in stages) and prof["top_cumulative"]

    md = (tmp_path / "BENCHMARKS.md").read_text()
    for needle in ("## Headline", "## Machine", "## Where the time goes", "fetch.wait.max.ms", "Quick mode",
                   "stalls of 10 ms or more", "Redis stall ms", "Redis bytes per applied feedback",
                   "## The engine alone", "bound on this machine, same run", "| mean batch | AIMD limit |",
                   "cores: system / gen. / broker / Redis / other / idle", "## Machine"):
        assert needle in md, needle
    pngs = list(tmp_path.glob("*.png"))
    assert any("p99-vs-load" in p.name for p in pngs) and any("cdf-eddy-eos" in p.name for p in pngs)
    assert any("batches-eddy-eos" in p.name for p in pngs) and any(p.name.endswith("-cores.png") for p in pngs)
    for p in pngs:
        assert f"]({p.name})" in md, p.name

    import redis
    from confluent_kafka.admin import AdminClient

    assert not list(redis.Redis.from_url(stack["redis_url"]).scan_iter(f"{prefix}*", count=1000))
    admin = AdminClient({"bootstrap.servers": stack["bootstrap"]})
    deadline = time.monotonic() + 60  # topic deletion completes asynchronously on the broker
    while (left := [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]):
        assert time.monotonic() < deadline, f"topics not deleted: {left}"
        time.sleep(0.5)
