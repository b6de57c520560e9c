"""The operations files agree with the code: the Grafana dashboard has a panel for every metric a
worker exports, its provisioning names the dashboard's datasource, and the compose file can run
N workers (`docker compose up --scale worker=N`) scraped by its Prometheus."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from stream import config
from stream.engine.batching import AdaptiveBatchSize
from stream.metrics import WorkerMetrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/eddy.json"


def _exported_names() -> set[str]:
    """Every metric family a worker's registry exposes (an engine with a model and caches)."""
    engine = SimpleNamespace(model=SimpleNamespace(version="v1"), cache_figures=lambda: [("v1", 1, 10, 2, 1)])
    worker = SimpleNamespace(s=config.from_env({}, metrics_port=0), stats=Counter(),
                             batching=AdaptiveBatchSize(slo_ms=10.0), engine=engine)
    m = WorkerMetrics(worker)
    m.lag = {("t", 0): 1}
    names = set()
    for family in m.registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    return names


def test_the_dashboard_has_a_panel_for_every_exported_metric():
    dash = json.loads(DASHBOARD.read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    used = set(re.findall(r"eddy_[a-z_]+", exprs))
    exported = _exported_names()
    assert len(exported) >= 25
    missing = {n for n in exported if not any(u == n or u.startswith(n + "_") or u == n + "_bucket" for u in used)}
    assert not missing, f"metrics without a panel: {sorted(missing)}"
    unknown = {u for u in used if not any(u == n or u.startswith(n.removesuffix("_total")) for n in exported)}
    assert not unknown, f"panels query metrics no worker exports: {sorted(unknown)}"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


def test_the_provisioned_datasource_is_the_one_the_panels_name():
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uids = {d["uid"] for d in ds["datasources"]}
    dash = json.loads(DASHBOARD.read_text())
    assert {p["datasource"]["uid"] for p in dash["panels"]} <= uids
    prov = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/eddy.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{prov['providers'][0]['options']['path']}:ro" in mounts


def test_compose_workers_scale_and_prometheus_finds_every_replica():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # replicas would clash
    assert worker["environment"]["EDDY_METRICS_BIND"] == "0.0.0.0"
    port = int(worker["environment"]["EDDY_METRICS_PORT"])
    prom = yaml.safe_load((ROOT / "deploy/compose/prometheus.yml").read_text())
    [sd] = prom["scrape_configs"][0]["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["port"] == port
    for name in ("prometheus", "grafana"):  # published on loopback only
        assert all(p.startswith("127.0.0.1:") for p in compose["services"][name]["ports"])
    for service in compose["services"].values():
        for v in service.get("volumes", []):
            src = v.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), v
