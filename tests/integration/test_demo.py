"""``eddy demo --quick`` end to end on the real broker and Redis: it streams through Kafka,
reports every arm, and the live hybrid beats the frozen model and river's BiasedMF by at least 2%,
as README claims (on MovieLens-100K, or on the simulator when the download is impossible: the
test then says so)."""

from __future__ import annotations

import json
import warnings

import pytest

from stream import cli

pytestmark = pytest.mark.integration

ARMS = ["frozen", "eddy_live", "retrain", "biased_mf", "baseline", "funk_mf", "user_mean",
        "mlp_lsh", "velox",  # --quick skips the text feature net's arms (text, text_cached)
        "wide_exact", "wide_anytime", "cascade", "exp3", "exp4"]  # the serving layer, on the first 600 ratings
SERVED = ARMS[-5:]


def test_quick_demo_reports_every_arm(settings, tmp_path, capsys):
    rc = cli.main(["demo", "--quick", "--no-progress", "--worker", "thread", "--out", str(tmp_path / "reports"),
                   "--bootstrap", settings.bootstrap, "--redis-url", settings.redis_url,
                   "--topic-prefix", settings.topic_prefix, "--model-dir", settings.model_dir])
    out, err = capsys.readouterr()
    assert rc == 0, err[-3000:]
    [run_dir] = (tmp_path / "reports").iterdir()
    doc = json.loads((run_dir / "report.json").read_text())
    assert [a["key"] for a in doc["arms"]] == ARMS
    n = doc["split"]["n_stream"]
    assert n == 1500
    for arm in doc["arms"]:
        # every streamed rating got a prediction, the live arm's through Kafka; the serving layer's arms: 600
        assert arm["answered"] == (600 if arm["key"] in SERVED else n), arm
        assert 0 < arm["rmse"] < 5, arm
        assert (arm["on_time"] is not None) == (arm["key"] in SERVED or arm["key"] == "eddy_live"), arm
        assert arm["on_time"] is None or 0 <= arm["on_time"] <= 1, arm
    served = doc["serving_layer"]
    assert served["deadline_ms"] > 0 and 0 <= served["escalated"] <= 1 and served["n"] == 600
    # each selector decided with both versions, and each version's online error was counted on every feedback
    assert {v: k for v, (k, _) in served["shadow_rmse"]["exp3"].items()} == {"cheap": 600, "wide": 600}
    assert doc["live"]["dead_lettered"] == 0
    assert set(doc["live"]["feature_net_versions"]) == {"v1"}
    rmse = {a["key"]: a["rmse"] for a in doc["arms"]}
    if doc["data"]["source"] == "movielens-100k":
        # README's claims, on the ratings this run streamed: online per-user updates beat the frozen
        # offline model, and the hybrid beats river's BiasedMF by 2% or more (quick run, measured:
        # 0.986 against 1.064 and 1.037; the full demo: see docs/demo.md)
        assert rmse["eddy_live"] < rmse["frozen"], rmse
        assert rmse["eddy_live"] <= 0.98 * rmse["biased_mf"], rmse
        assert doc["hybrid_vs_biased_mf"] == pytest.approx(rmse["eddy_live"] / rmse["biased_mf"] - 1)
        assert "against river's BiasedMF (d)" in (run_dir / "report.md").read_text()
    else:  # the download was impossible: said loudly by the demo, and here
        assert doc["data"]["source"] == "simulator"
        assert doc["data"]["fallback_reason"] and "NOT available" in err
        warnings.warn(f"the demo ran on the simulator, not MovieLens-100K ({doc['data']['fallback_reason']}): "
                      "README's ordering (online beats frozen and BiasedMF by 2%) was NOT checked", UserWarning,
                      stacklevel=1)
        # the simulator's tastes barely drift over 1500 clicks, so online updates neither help nor
        # hurt there (measured: 0.513 against 0.510); a broken learner would be far off
        assert rmse["eddy_live"] < 1.02 * rmse["frozen"], rmse
    md = (run_dir / "report.md").read_text()
    assert all(f"| ({c}) " in md for c in "abcdefg")
    assert (run_dir / "prequential.png").stat().st_size > 10_000
    assert "report.md: " in out and "(b) Eddy hybrid" in out
