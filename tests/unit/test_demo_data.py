"""The demo's data: MovieLens parsing from the wheel, the cache, and the simulator fallback.

No network: the wheel here is a small zip with the same members and columns.
"""

from __future__ import annotations

import io
import subprocess
import zipfile

import pandas as pd
import pytest

from stream.demo import data

pytestmark = pytest.mark.unit


def _fake_wheel(path, n_ratings=6):
    ratings = pd.DataFrame({
        "user_id": [1, 2, 1, 2, 1, 2][:n_ratings],
        "movie_id": [10, 10, 20, 30, 30, 20][:n_ratings],
        "rating": [5, 3, 4, 1, 2, 4][:n_ratings],
        "timestamp": [300, 100, 200, 400, 600, 500][:n_ratings],
    })
    users = pd.DataFrame({"user_id": [1, 2], "age": [24, 53], "gender": ["M", "F"],
                          "occupation": ["technician", "other"], "zip_code": ["85711", "94043"]})
    items = pd.DataFrame({"movie_id": [10, 20, 30], "movie_title": ["A", "B", "C"],
                          "release_date": ["01-Jan-1995", None, "15-Mar-1977"], "video_release_date": [None] * 3,
                          "IMDb_URL": ["", "", ""]})
    for g in data.GENRES:
        items[g] = 0
    items.loc[0, "Children's"] = 1
    items.loc[2, "Sci-Fi"] = 1
    with zipfile.ZipFile(path, "w") as z:
        for part, frame in (("data", ratings), ("users", users), ("items", items)):
            buf = io.BytesIO()
            frame.to_parquet(buf, compression="brotli")
            z.writestr(data._MEMBER.format(part), buf.getvalue())
    return path


def test_movielens_records_are_time_ordered_with_user_and_movie_features(tmp_path):
    ds = data.read_movielens(_fake_wheel(tmp_path / data.WHEEL_NAME))
    assert ds.source == "movielens-100k" and ds.fallback_reason is None
    assert [r["ts"] for r in ds.records] == [100, 200, 300, 400, 500, 600]
    first = ds.records[0]
    assert first["user_id"] == "u2" and first["reward"] == 3.0
    assert first["context"] == {"age": 53.0, "gender": "F", "occupation": "other"}
    assert first["item"]["id"] == "m10"
    feats = first["item"]["features"]
    assert feats["g_childrens"] == 1.0 and feats["g_sci_fi"] == 0.0 and feats["year"] == 1995.0
    assert len([k for k in feats if k.startswith("g_")]) == len(data.GENRES)
    by_id = {c["id"]: c for c in ds.catalog}
    assert "year" not in by_id["m20"]["features"]  # unknown release date: missing, never NaN on the wire
    assert by_id["m30"]["features"]["g_sci_fi"] == 1.0
    assert ds.n_users == 2


def test_limit_takes_the_earliest_ratings(tmp_path):
    ds = data.read_movielens(_fake_wheel(tmp_path / data.WHEEL_NAME), limit=2)
    assert [r["ts"] for r in ds.records] == [100, 200]


def test_a_cached_wheel_is_reused_without_pip(tmp_path, monkeypatch):
    wheel = _fake_wheel(tmp_path / data.WHEEL_NAME)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip ran although the wheel is cached"))
    assert data.fetch_wheel(tmp_path) == wheel


def test_failed_download_raises_data_unavailable(tmp_path, monkeypatch):
    def fake_run(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and data.WHEEL_SPEC in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(data.DataUnavailable, match="exited 1: ERROR: Could not find"):
        data.fetch_wheel(tmp_path / "cache", quiet=True)


def test_load_falls_back_to_the_simulator_and_says_why(tmp_path, monkeypatch):
    def unavailable(*a, **k):
        raise data.DataUnavailable("no network")

    monkeypatch.setattr(data, "fetch_wheel", unavailable)
    ds = data.load("movielens", cache_dir=tmp_path, limit=300)
    assert ds.source == "simulator" and ds.fallback_reason == "no network"
    assert len(ds.records) == 300


def test_simulated_records_have_the_training_shape():
    from features.train import examples_from_records

    ds = data.simulated(200, seed=1)
    assert ds.fallback_reason is None and len(ds.records) == 200
    assert [r["ts"] for r in ds.records] == sorted(r["ts"] for r in ds.records)
    examples = examples_from_records(ds.records)
    assert {e[2]["id"] for e in examples} <= {c["id"] for c in ds.catalog}
    assert data.simulated(200, seed=1).records == ds.records  # seeded


def test_history_features_come_from_earlier_ratings_only():
    ds = data.simulated(400, seed=3)
    base = data.with_history(ds.records)
    changed = [dict(r) for r in ds.records]
    k = 200
    changed[k] = {**changed[k], "reward": changed[k]["reward"] + 7.0}
    other = data.with_history(changed)
    assert [r["context"] for r in base[: k + 1]] == [r["context"] for r in other[: k + 1]]
    assert [r["item"] for r in base[: k + 1]] == [r["item"] for r in other[: k + 1]]
    user, item = ds.records[k]["user_id"], ds.records[k]["item"]["id"]
    later_user = next(i for i in range(k + 1, 400) if ds.records[i]["user_id"] == user)
    later_item = next(i for i in range(k + 1, 400) if ds.records[i]["item"]["id"] == item)
    assert base[later_user]["context"]["u_mean"] != other[later_user]["context"]["u_mean"]
    assert base[later_item]["item"]["features"]["i_mean"] != other[later_item]["item"]["features"]["i_mean"]
    assert ds.records[0]["context"] == data.simulated(400, seed=3).records[0]["context"]  # inputs untouched


def test_load_attaches_the_history_features():
    ds = data.load("simulator", limit=200)
    assert set(data.HISTORY_CONTEXT) <= set(ds.records[-1]["context"])
    assert set(data.HISTORY_ITEM) <= set(ds.records[-1]["item"]["features"])
    assert "u_mean" not in ds.records[0]["context"]  # nothing known yet: missing, not 0
