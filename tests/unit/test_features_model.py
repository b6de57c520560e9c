"""FeatureNet shapes, FeatureModel.embed / embed_many, artifact save / load and corrupt artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from features import FeatureError, FeatureModel, FeatureNet, FeatureNetConfig, train_feature_net
from features.encoder import FeatureEncoder
from features.model import ARTIFACT_FILES

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_torch_thread")]


CFG = FeatureNetConfig(
    context_numeric=("hour",), context_categorical=("device",),
    item_numeric=("price",), item_categorical=("genre",),
    hash_buckets=512, hidden=(16, 8), output_dim=6,
)
QUERIES = [
    ({"hour": 3, "device": "ios"}, [{"id": "a", "features": {"price": 1.0, "genre": "rock"}}, {"id": "b"}]),
    ({"hour": 20}, [{"id": "c", "features": {"genre": "jazz"}}]),
    ({}, []),
    ({"device": "web"}, [{"id": f"i{k}"} for k in range(5)]),
]


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    ex = [(f"u{rng.integers(10)}", {"hour": int(rng.integers(24)), "device": str(rng.choice(["ios", "web"]))},
           {"id": f"i{rng.integers(8)}", "features": {"price": float(rng.random()), "genre": "rock"}},
           float(rng.random())) for _ in range(300)]
    return train_feature_net(ex, CFG, epochs=2, batch_size=64, progress=False, device="cpu", version="t1")


@pytest.mark.parametrize("cfg", [
    CFG,
    FeatureNetConfig(context_numeric=("x",), item_id_embedding_dim=0, hidden=(), output_dim=3),
    FeatureNetConfig(item_categorical=("g",), dropout=0.5, output_dim=2),
])
def test_net_output_shape(cfg):
    net = FeatureNet(cfg)
    batch = FeatureEncoder(cfg).encode({"x": 1.0, "hour": 2}, [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    out = net(batch)
    assert out.shape == (3, cfg.output_dim) and out.dtype == torch.float32


def _torch_forward(net: FeatureNet, batch) -> np.ndarray:
    with torch.inference_mode():
        return net(batch).numpy()


@pytest.mark.parametrize("cfg", [
    CFG,
    FeatureNetConfig(context_numeric=("x",), item_id_embedding_dim=0, hidden=(), output_dim=3),
    FeatureNetConfig(item_categorical=("g",), dropout=0.5, hidden=(32, 16, 8), output_dim=2),
])
def test_the_numpy_forward_pass_is_the_nets_in_eval_mode(cfg):
    torch.manual_seed(1)
    net = FeatureNet(cfg).eval()
    with torch.no_grad():  # biases away from zero, so a dropped bias or ReLU would show
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    batch = FeatureEncoder(cfg).encode({"x": 1.5, "hour": 2, "device": "ios"},
                                       [{"id": f"i{k}", "features": {"price": k / 3, "genre": "g" + str(k % 3)}}
                                        for k in range(7)])
    out = net.forward_numpy(batch)
    assert out.dtype == np.float32 and out.shape == (7, cfg.output_dim)
    np.testing.assert_allclose(out, _torch_forward(net, batch), rtol=1e-5, atol=1e-6)
    assert np.abs(out).max() > 0.1
    none = batch.take(torch.zeros(0, dtype=torch.long))  # a feature cache may ask for no rows
    assert net.forward_numpy(none).shape == (0, cfg.output_dim) == tuple(_torch_forward(net, none).shape)


def test_the_numpy_forward_pass_follows_the_parameters_and_steps_aside_where_it_does_not_apply(trained):
    import copy
    import pickle

    net, batch = trained.net, trained.encoder.encode_many(QUERIES[:2])
    before = net.forward_numpy(batch)
    changed = {k: v + 0.25 for k, v in net.state_dict().items()}
    twin = copy.deepcopy(net)
    twin.load_state_dict(changed)  # in place: the copy's views are of the copy's own parameters
    np.testing.assert_allclose(twin.forward_numpy(batch), _torch_forward(twin, batch), rtol=1e-5, atol=1e-6)
    assert not np.allclose(twin.forward_numpy(batch), before)
    np.testing.assert_array_equal(net.forward_numpy(batch), before)  # the original is untouched
    restored = pickle.loads(pickle.dumps(twin))
    np.testing.assert_array_equal(restored.forward_numpy(batch), twin.forward_numpy(batch))
    twin.double()  # moved (new tensors, float64): torch serves it
    assert twin.forward_numpy(batch) is None
    twin.float().train()
    assert twin.forward_numpy(batch) is None  # training mode: dropout and gradients are torch's
    twin.eval()
    np.testing.assert_allclose(twin.forward_numpy(batch), _torch_forward(twin, batch), rtol=1e-5, atol=1e-6)


def test_limit_threads_caps_torch_and_numpys_blas():
    from threadpoolctl import threadpool_info

    from features.model import limit_threads

    before = torch.get_num_threads(), [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    assert before[1], "numpy's BLAS is loaded, so there is a limit to check"
    try:
        limit_threads(1)
        assert torch.get_num_threads() == 1
        assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == [1] * len(before[1])
    finally:
        from threadpoolctl import threadpool_limits
        torch.set_num_threads(before[0])
        threadpool_limits(limits=max(before[1], default=1), user_api="blas")


def test_missing_rows_of_embedding_tables_stay_zero(trained):
    assert torch.count_nonzero(trained.net.categorical.weight[0]) == 0
    assert torch.count_nonzero(trained.net.item_id.weight[0]) == 0


def test_embed_shape_dtype_and_empty():
    m = FeatureModel.create(CFG, device="cpu")
    out = m.embed(*QUERIES[0])
    assert out.shape == (2, 6) and out.dtype == np.float32
    assert m.embed({}, []).shape == (0, 6)
    assert m.embed_many([]) == []
    assert [a.shape for a in m.embed_many([({}, []), ({}, [])])] == [(0, 6), (0, 6)]


def test_embed_many_equals_embed_per_query(trained):
    many = trained.embed_many(QUERIES)
    assert [a.shape[0] for a in many] == [len(items) for _, items in QUERIES]
    for (context, items), got in zip(QUERIES, many):
        np.testing.assert_allclose(got, trained.embed(context, items), rtol=1e-5, atol=1e-6)


def test_embed_is_deterministic_and_no_grad(trained):
    a = trained.embed(*QUERIES[0])
    b = trained.embed(*QUERIES[0])
    assert np.array_equal(a, b)
    assert not trained.net.training


def test_save_load_round_trip(trained, tmp_path):
    path = trained.save(tmp_path / "t1", data_range={"from_ts": 0, "to_ts": 299})
    assert sorted(p.name for p in path.iterdir()) == sorted(ARTIFACT_FILES)
    loaded = FeatureModel.load(path, device="cpu")
    assert loaded.version == "t1" and loaded.config == trained.config
    assert loaded.metrics == json.loads(json.dumps(trained.metrics))
    assert loaded.meta["data_range"] == {"from_ts": 0, "to_ts": 299}
    assert {"created_at", "device", "n_train", "n_val"} <= set(loaded.meta)
    np.testing.assert_array_equal(loaded.encoder.mean, trained.encoder.mean)
    for q in QUERIES:  # same batch shape -> bitwise equal
        np.testing.assert_array_equal(loaded.embed(*q), trained.embed(*q))
    for a, b in zip(loaded.embed_many(QUERIES), trained.embed_many(QUERIES)):
        np.testing.assert_array_equal(a, b)
    assert loaded.user_weights.keys() == trained.user_weights.keys()
    for u, (w, b) in trained.user_weights.items():
        np.testing.assert_array_equal(loaded.user_weights[u][0], w)
        assert loaded.user_weights[u][1] == pytest.approx(b, rel=1e-6)
    w0, b0 = trained.mean_user_weights()
    np.testing.assert_allclose(loaded.predict("nobody", *QUERIES[0]), trained.embed(*QUERIES[0]) @ w0 + b0, rtol=1e-5)


def test_save_without_users(tmp_path):
    m = FeatureModel.create(CFG, version="empty", device="cpu")
    loaded = FeatureModel.load(m.save(tmp_path / "empty"))
    assert loaded.user_weights == {}
    w, b = loaded.mean_user_weights()
    assert w.shape == (6,) and b == 0.0


def test_save_rejects_non_json_data_range(tmp_path):
    m = FeatureModel.create(CFG, device="cpu")
    with pytest.raises(FeatureError, match="JSON-serialisable"):
        m.save(tmp_path / "x", data_range={"from": object()})


@pytest.mark.parametrize("damage", ["missing_dir", *[f"missing:{f}" for f in ARTIFACT_FILES],
                                    "corrupt:weights.pt", "corrupt:users.npz", "corrupt:config.json",
                                    "corrupt:meta.json", "corrupt:metrics.json", "wrong_shape", "wrong_users"])
def test_load_rejects_bad_artifacts_naming_the_path(trained, tmp_path, damage):
    path = trained.save(tmp_path / "art")
    kind, _, name = damage.partition(":")
    expected = path
    if kind == "missing_dir":
        path = tmp_path / "nope"
        expected = path
    elif kind == "missing":
        (path / name).unlink()
        expected = path / name
    elif kind == "corrupt":
        (path / name).write_bytes(b"\x00garbage{")
        expected = path / name
    elif kind == "wrong_shape":  # weights from a different config
        other = FeatureModel.create(FeatureNetConfig(context_numeric=("hour",), output_dim=3), device="cpu")
        torch.save(other.net.state_dict(), path / "weights.pt")
        expected = path / "weights.pt"
    elif kind == "wrong_users":
        np.savez(path / "users.npz", user_ids=np.array(["a"]), W=np.zeros((1, 2), np.float32), b=np.zeros(1, np.float32))
        expected = path / "users.npz"
    with pytest.raises(FeatureError) as info:
        FeatureModel.load(path, device="cpu")
    assert str(expected) in str(info.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"version": ""}, "version must be a non-empty string"),
    ({"version": "a/b"}, "version must be a non-empty string without '/'"),
    ({"version": "v", "device": "nonsense"}, "device must name a torch device, got 'nonsense'"),
    ({"version": "v", "user_weights": {"u": (np.zeros(2), 0.0)}}, "user_weights['u'] w must have shape (6,)"),
])
def test_model_rejects_bad_arguments(kwargs, message):
    with pytest.raises(FeatureError) as info:
        FeatureModel(FeatureNet(CFG), FeatureEncoder(CFG), **kwargs)
    assert message in str(info.value)


def test_model_rejects_mismatched_net_and_encoder():
    other = FeatureNetConfig(context_numeric=("z",))
    with pytest.raises(FeatureError, match="configs differ"):
        FeatureModel(FeatureNet(CFG), FeatureEncoder(other), version="v")
