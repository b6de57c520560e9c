"""The feature cache: LRU bounds and counts, version isolation, exactness, SimHash coarsening, warming."""

from __future__ import annotations

import json

import numpy as np
import pytest

from features import FeatureError, FeatureModel, FeatureNetConfig
from features.cache import FeatureCache, FeatureCaches
from features.lsh import SimHash

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("one_torch_thread")]

CFG = FeatureNetConfig(context_numeric=("hour", "spend"), context_categorical=("device",),
                       item_numeric=("price",), hash_buckets=512, hidden=(16,), output_dim=4)


def _model(version="v1", seed=0):
    return FeatureModel.create(CFG, version=version, device="cpu", seed=seed)


def _queries(n, rng):
    return [({"hour": float(rng.integers(24)), "spend": float(rng.random()), "device": str(rng.choice(["ios", "web"]))},
             [{"id": f"i{rng.integers(6)}", "features": {"price": float(rng.integers(3))}} for _ in range(3)])
            for _ in range(n)]


def test_lru_evicts_the_least_recently_used_and_counts():
    c = FeatureCache("v1", capacity=2)
    calc = lambda keys: (lambda rows: np.array([[float(ord(keys[i]))] for i in rows]))
    for keys in (["a", "b"], ["a"], ["c"]):  # "a" was used after "b": "b" goes
        c.get_or_compute(keys, calc(keys), source=lambda i, k=keys: k[i])
    assert c.sources(10) == ["a", "c"]
    assert (c.hits, c.misses, c.evictions, len(c)) == (1, 3, 1, 2)


def test_cached_rows_equal_uncached_rows_and_only_misses_are_computed():
    m, rng = _model(), np.random.default_rng(0)
    queries = _queries(40, rng)
    plain = m.embed_many(queries)
    cache = FeatureCache("v1", capacity=10_000)
    first = m.embed_many(queries, cache=cache)
    misses = cache.misses
    again = m.embed_many(queries, cache=cache)
    for p, a, b in zip(plain, first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(p, a, rtol=1e-6, atol=1e-6)
    assert cache.misses == misses and cache.hits >= 120  # the second pass computed nothing


def test_a_caches_figures_are_its_counts_and_settings():
    c = FeatureCache("v1", capacity=2, lsh_bits=4)
    keys = ["a", "b", "a", "c"]
    c.get_or_compute(keys, lambda rows: np.zeros((len(rows), 1)), source=lambda i: keys[i])
    assert c.figures() == {"version": "v1", "entries": 2, "capacity": 2, "lsh_bits": 4,
                           "hits": 1, "misses": 3, "evictions": 1, "coarsened": 0}


@pytest.mark.parametrize("make, message", [
    (lambda: FeatureCache("v1", capacity=True), "feature cache capacity must be an int >= 1, got True"),
    (lambda: FeatureCache("v1", capacity=2.0), "feature cache capacity must be an int >= 1, got 2.0"),
    (lambda: FeatureCache("v1", capacity=1, lsh_bits=True), r"lsh_bits must be an int in \[0, 64\], got True"),
    (lambda: FeatureCache("v1", capacity=1, lsh_bits=8.0), r"lsh_bits must be an int in \[0, 64\], got 8.0"),
    (lambda: FeatureCaches(capacity=-1), "feature cache capacity must be an int >= 0, got -1"),
    (lambda: FeatureCaches(capacity=True), "feature cache capacity must be an int >= 0, got True"),
    (lambda: FeatureCaches(capacity=10, lsh_bits=65), r"lsh_bits must be an int in \[0, 64\], got 65"),
])
def test_bad_cache_settings_are_refused_at_once_with_their_value(make, message):
    with pytest.raises(FeatureError, match=message):
        make()


def test_lsh_keys_agree_across_workers_and_follow_the_input_width():
    """Every worker builds the same planes (a fixed seed), so a key means the same bucket everywhere."""
    rng = np.random.default_rng(7)
    x, e = rng.standard_normal((20, 3)).astype(np.float32), rng.integers(0, 9, (20, 2))
    a, b = FeatureCache("v1", capacity=10, lsh_bits=64), FeatureCache("v1", capacity=10, lsh_bits=64)
    assert a.row_keys(x, e) == b.row_keys(x, e)
    wider = rng.standard_normal((20, 4)).astype(np.float32)
    assert len(a.row_keys(wider, e)) == 20  # a new width gets planes of its own


def test_cached_rows_are_read_only_and_evictions_add_up():
    c = FeatureCache("v1", capacity=1)
    (row,) = c.get_or_compute(["a"], lambda rows: np.ones((len(rows), 2)), source=lambda i: i)
    assert not row.flags.writeable  # every request that hits shares it
    c.get_or_compute(["b"], lambda rows: np.ones((len(rows), 2)), source=lambda i: i)
    c.get_or_compute(["c"], lambda rows: np.ones((len(rows), 2)), source=lambda i: i)
    assert c.evictions == 2
    with pytest.raises(FeatureError, match="compute gave 1 rows for 2 missing keys"):
        c.get_or_compute(["d", "e"], lambda rows: np.ones((1, 2)), source=lambda i: i)


def test_a_swap_keeps_the_retired_caches_counts_in_the_totals():
    caches = FeatureCaches(capacity=1)
    keys = ["a", "a", "b"]
    caches.live("v1").get_or_compute(keys, lambda rows: np.zeros((len(rows), 1)), source=lambda i: keys[i])
    assert caches.warm_sources() == []  # warming is off unless asked for
    caches.install(caches.live("v1"))  # installing the live cache again retires nothing
    assert caches.totals() == {"hits": 1, "misses": 2, "evictions": 1}
    caches.install(caches.new("v2"))
    assert caches.totals() == {"hits": 1, "misses": 2, "evictions": 1}
    assert caches.live("v2").lsh_bits == 0 and FeatureCaches(capacity=1, lsh_bits=3).new("v").lsh_bits == 3


def test_a_model_refuses_another_versions_cache():
    with pytest.raises(FeatureError, match="cache of version 'v1'"):
        _model("v2").embed_many(_queries(1, np.random.default_rng(0)), cache=FeatureCache("v1", capacity=10))


@pytest.mark.parametrize("bad", [{"capacity": 0}, {"capacity": 1, "lsh_bits": -1}, {"capacity": 1, "lsh_bits": 65}])
def test_bad_cache_settings_are_named(bad):
    with pytest.raises(FeatureError, match="capacity|lsh_bits"):
        FeatureCache("v1", **bad)


def test_simhash_coarsening_raises_hits_and_is_exact_per_bucket():
    m, rng = _model(), np.random.default_rng(1)
    queries = _queries(200, rng)
    exact, coarse = FeatureCache("v1", capacity=100_000), FeatureCache("v1", capacity=100_000, lsh_bits=2)
    m.embed_many(queries, cache=exact)
    out = m.embed_many(queries, cache=coarse)
    assert coarse.hits > exact.hits
    # a coarse hit returns the value computed for the bucket's first input: an approximation, but a real f
    assert all(np.isfinite(o).all() for o in out)


def test_simhash_separates_opposite_inputs_and_is_seeded():
    x = np.random.default_rng(0).standard_normal((50, 5)).astype(np.float32)
    a, b = SimHash(5, 16, seed=3), SimHash(5, 16, seed=3)
    np.testing.assert_array_equal(a.signatures(x), b.signatures(x))
    assert not (a.signatures(x) == a.signatures(-x)).all(axis=1).any()


def test_simhash_depends_on_the_direction_only():
    """Charikar's hash: a row's bucket is the side of each plane it lies on, so scaling a row by any positive
    factor keeps its signature and negating it flips every bit."""
    x = np.random.default_rng(4).standard_normal((40, 6)).astype(np.float32)
    h = SimHash(6, 64)
    sig = h.signatures(x)
    assert sig.shape == (40, 8) and sig.dtype == np.uint8
    for scale in (1e-3, 7.0):
        np.testing.assert_array_equal(h.signatures(scale * x), sig)
    np.testing.assert_array_equal(h.signatures(-x), ~sig)


@pytest.mark.parametrize("dim, bits, message", [
    (3, 0, "lsh_bits must be an int in"), (3, 65, "lsh_bits must be an int in"),
    (3, True, "lsh_bits must be an int in"), (3, 8.0, "lsh_bits must be an int in"),
    (-1, 8, "dim must be an int >= 0"), (True, 8, "dim must be an int >= 0"), (3.0, 8, "dim must be an int >= 0"),
])
def test_bad_simhash_settings_are_named(dim, bits, message):
    with pytest.raises(FeatureError, match=message):
        SimHash(dim, bits)


def test_simhash_accepts_its_limits_and_refuses_rows_of_another_width():
    assert SimHash(0, 1).signatures(np.zeros((2, 0))).shape == (2, 1)
    h = SimHash(3, 64)
    for bad in (np.zeros(3), np.zeros((2, 4)), np.zeros((1, 2, 3))):
        with pytest.raises(FeatureError, match=r"shape \(B, 3\)"):
            h.signatures(bad)


def test_caches_keep_versions_apart_and_totals_survive_a_swap():
    caches = FeatureCaches(capacity=1000, warm=100)
    v1, v2 = _model("v1", seed=0), _model("v2", seed=1)
    queries = _queries(20, np.random.default_rng(2))
    v1.embed_many(queries, cache=caches.live("v1"))
    before = caches.totals()
    warm = caches.warmed(v2, caches.warm_sources())
    assert warm.version == "v2" and len(warm) > 0 and (warm.hits, warm.misses) == (0, 0)
    caches.install(warm)
    out = v2.embed_many(queries, cache=caches.live("v2"))
    assert caches.live("v2") is warm and warm.misses == 0  # every input was warmed
    for o, want in zip(out, v2.embed_many(queries)):  # v2's features, not v1's
        np.testing.assert_allclose(o, want, rtol=1e-6, atol=1e-6)
    after = caches.totals()
    assert all(after[k] >= before[k] for k in after) and after["hits"] > before["hits"]


def test_warming_fills_every_source_in_chunks_and_only_for_cached_kinds():
    v2 = _model("v2", seed=1)
    caches = FeatureCaches(capacity=1000, warm=100)
    rng = np.random.default_rng(5)
    sources = [(ctx, item) for ctx, items in _queries(4, rng) for item in items[:1]]
    everything = FeatureCache("v2", capacity=1000)
    v2.embed_many([(ctx, [item]) for ctx, item in sources], cache=everything)
    warm = caches.warmed(v2, sources, chunk=1)
    assert len(warm) == len(everything) > 1  # every source, not only the first chunk's
    assert FeatureCaches(capacity=1000, kinds=("text",)).warmed(v2, sources) is None  # an MLP is not cached there


def test_the_warm_sources_are_the_most_recent_inputs_and_none_when_warming_is_off():
    c = FeatureCache("v1", capacity=10)
    keys = ["a", "b", "c"]
    c.get_or_compute(keys, lambda rows: np.zeros((len(rows), 1)), source=lambda i: keys[i])
    assert c.sources(0) == [] and c.sources(1) == ["c"] and c.sources(2) == ["b", "c"]


def test_the_workers_cache_figures_name_the_live_version_or_none():
    caches = FeatureCaches(capacity=1, lsh_bits=3)
    assert caches.figures() == {"hits": 0, "misses": 0, "evictions": 0, "entries": 0, "capacity": 1,
                                "lsh_bits": 3, "version": None}
    keys = ["a", "a", "b"]
    caches.live("v1").get_or_compute(keys, lambda rows: np.zeros((len(rows), 1)), source=lambda i: keys[i])
    assert caches.figures() == {"hits": 1, "misses": 2, "evictions": 1, "entries": 1, "capacity": 1,
                                "lsh_bits": 3, "version": "v1"}


def test_caching_off_gives_no_cache():
    assert FeatureCaches(capacity=0).live("v1") is None


def test_an_artifact_without_a_kind_loads_as_the_mlp(tmp_path):
    m = _model()
    m.save(tmp_path)
    doc = json.loads((tmp_path / "config.json").read_text())
    for key in ("kind", "item_text", "text_dim"):
        doc["feature_net"].pop(key)
    (tmp_path / "config.json").write_text(json.dumps(doc))
    loaded = FeatureModel.load(tmp_path, device="cpu")
    assert loaded.kind == "mlp"
    q = _queries(2, np.random.default_rng(3))
    for a, b in zip(loaded.embed_many(q), m.embed_many(q)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "cnn"}, "kind must be one of"),
    ({"kind": "text"}, "needs item_text"),
    ({"kind": "text", "item_text": "price"}, "must not also be"),
])
def test_bad_kinds_are_named(kwargs, message):
    with pytest.raises(FeatureError, match=message):
        FeatureNetConfig(item_numeric=("price",), **kwargs)


def test_coarsened_hits_are_the_rows_served_for_another_exact_input():
    c = FeatureCache("v1", capacity=10, lsh_bits=1)
    compute = lambda rows: np.array([[float(i)] for i in rows])  # noqa: E731
    flagged: set[int] = set()
    # bucket "A" first computed for input "x"; "y" shares the bucket, "x" again is the same input
    c.get_or_compute(["A", "A", "A"], compute, source=lambda i: i, exact=["x", "y", "x"], coarsened=flagged)
    assert flagged == {1}
    flagged.clear()
    c.get_or_compute(["A", "B", "A"], compute, source=lambda i: i, exact=["x", "z", "w"], coarsened=flagged)
    assert flagged == {2} and c.coarsened == 2


def test_embed_many_lists_each_querys_coarsened_candidates_and_exact_keys_list_none():
    m = _model()
    near = [({"hour": 3.0, "spend": 0.5, "device": "ios"}, [{"id": "i1", "features": {"price": 1.0}},
                                                             {"id": "i2", "features": {"price": 2.0}}]),
            ({"hour": 3.0, "spend": 0.5001, "device": "ios"}, [{"id": "i2", "features": {"price": 2.0}},
                                                                {"id": "i3", "features": {"price": 1.0}}])]
    coarse, exact = FeatureCache("v1", capacity=100, lsh_bits=16), FeatureCache("v1", capacity=100)
    marks: list = []
    out = m.embed_many(near, cache=coarse, coarsened=marks)
    assert marks == [(), (0,)]  # i2 in the second query reads the first query's row: a near input's f
    np.testing.assert_array_equal(out[1][0], out[0][1])
    plain = m.embed_many(near)
    assert not np.array_equal(plain[1][0], plain[0][1])  # exactly computed, the two differ
    marks = []
    m.embed_many(near, cache=exact, coarsened=marks)
    m.embed_many(near, cache=exact, coarsened=marks)  # exact hits are not coarsened
    assert marks == [(), (), (), ()]
