"""Demo arm: model selection over two real feature nets on MovieLens-100K.

``python -m stream.demo.selection`` trains two versions offline on the start of the
demo's stream, a *weak* one (few ratings, one epoch) and a *strong* one (many
ratings, more epochs), then streams the next ratings through the worker's engine
(:class:`stream.engine.Engine`, the code ``eddy worker`` runs, committing every batch
to the real Redis through :class:`stream.store.RedisStore`; Kafka is left out so that
five arms fit in a minute or two) under five arms, each from a clean state:

* ``weak alone`` and ``strong alone``: one version, no selection;
* ``shadow``: the weak version live, the strong one scored beside it (answers = weak);
* ``exp3``: Exp3 picks the version that answers each rating (weak live, strong challenger);
* ``exp4``: the Exp4-weighted mean of both versions' scores.

Each rating is a query (the rated movie among ``candidates - 1`` catalog movies)
and then its feedback; batches hold ``batch`` queries, then their feedback, so each
prediction is made before its rating is learned (prequential). The arm's prediction
of a rating is the answering version's score of the rated movie (exp4: the
ensemble's). Written to ``--out``: ``selection.json`` (RMSE per arm, weights over
time), ``selection.png`` (the weight of the strong version over time, and RMSE) and
``selection.md`` (the table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from bandits import make_policy
from stream import events, training
from stream import config
from stream.config import Settings
from stream.demo.data import load
from stream.demo.metrics import rmse
from stream.engine import Engine, InRecord
from stream.engine.selection import Selection
from stream.store import RedisStore

PARTITIONS = 4
ARMS = ("weak alone", "strong alone", "shadow", "exp3", "exp4")


def _query(i: int, r: dict, catalog: list[events.Item], n_candidates: int, seed: int) -> events.Query:
    rated = events.Item(r["item"]["id"], r["item"].get("features") or {})
    rng = np.random.default_rng([seed, i])
    others = [catalog[j] for j in rng.choice(len(catalog), n_candidates, replace=False) if catalog[j].id != rated.id]
    others = others[: n_candidates - 1]
    others.insert(int(rng.integers(len(others) + 1)), rated)
    return events.Query(f"sel-{i}", r["user_id"], float(i), r["context"], tuple(others), 1)


def run_arm(arm: str, settings: Settings, weak, strong, stream: list[dict], catalog: list[events.Item], *,
            n_candidates: int, batch: int, eta: float, gamma: float, loss_scale: float) -> dict:
    """One arm over ``stream`` from a clean state (its own key prefix); returns predictions and weights."""
    s = replace(settings, topic_prefix=f"{settings.topic_prefix}sel-{uuid.uuid4().hex[:8]}.")
    store = RedisStore.from_settings(s)
    live = strong if arm == "strong alone" else weak
    engine = Engine(live, make_policy(s.policy), learner=s.learner, join_window_s=600.0, seed=s.seed,
                    clock=lambda: 0.0)
    if arm in ("shadow", "exp3", "exp4"):
        engine.serve_selection(Selection([strong], mode=arm, eta=eta, gamma=gamma, loss_scale=loss_scale))
    epochs = store.claim(s.group, range(PARTITIONS))
    pred = np.full(len(stream), np.nan)
    weight = np.full(len(stream), np.nan)  # the strong version's weight when rating i was decided
    answered_by_strong = np.zeros(len(stream), dtype=bool)
    offsets = {"query": 0, "feedback": 0}

    def records(kind: str, evs: list) -> list[InRecord]:
        out = []
        for e in evs:
            p = zlib.crc32(e.user_id.encode()) % PARTITIONS
            out.append(InRecord(kind, f"x.{kind}", p, offsets[kind], e.user_id.encode(), events.encode(e)))
            offsets[kind] += 1
        return out

    def process(recs: list[InRecord]):
        b = engine.process(recs, store)
        if not store.commit(b.write, group=s.group, epochs=epochs):
            raise RuntimeError("fenced: another process claimed this arm's partitions")
        engine.commit(b)
        return b

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        for start in range(0, len(stream), batch):
            idx = range(start, min(start + batch, len(stream)))
            queries = [_query(i, stream[i], catalog, n_candidates, s.seed) for i in idx]
            b = process(records("query", queries))
            by_rid = {}
            for _, _, value in b.outputs.records:
                d = events.decode_decision(value)
                by_rid[d.request_id] = d
            for i, q in zip(idx, queries):
                d = by_rid[q.request_id]
                item = [c.id for c in d.candidates].index(stream[i]["item"]["id"])
                pred[i] = d.scores[item]
                weight[i] = d.version_weights.get(strong.version, np.nan)
                answered_by_strong[i] = d.feature_net_version == strong.version
            fb = [events.Feedback(q.request_id, q.user_id, stream[i]["item"]["id"], float(stream[i]["reward"]),
                                  float(i) + 0.5) for i, q in zip(idx, queries)]
            process(records("feedback", fb))
            if engine.selection is not None:  # the worker does this every prior_refresh_s (5 s)
                engine.selection.share(store.selections(PARTITIONS))
        errors = None
        if engine.selection is not None:
            from stream.engine.selection import merged_errors
            errors = {v: (n, (sse / n) ** 0.5) for v, (n, sse) in merged_errors(store.selections(PARTITIONS).values()).items()}
    finally:
        store.delete_deployment()
        store.close()
    return {"arm": arm, "pred": pred, "weight": weight, "strong_answered": answered_by_strong,
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "shadow_rmse": errors}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream.demo.selection", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("reports/selection"), help="directory of the JSON, PNG and table")
    p.add_argument("--strong-train", type=int, default=20_000, help="ratings the strong version trains on")
    p.add_argument("--weak-train", type=int, default=1_000, help="ratings the weak version trains on")
    p.add_argument("--stream", type=int, default=8_000, help="ratings streamed after the training part")
    p.add_argument("--candidates", type=int, default=5)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--eta", type=float, default=0.05)
    p.add_argument("--gamma", type=float, default=0.05)
    p.add_argument("--loss-scale", type=float, default=4.0)
    p.add_argument("--learner", default="rls")
    config.add_arguments(p, only=("redis_url", "topic_prefix", "seed"))
    args = p.parse_args(argv)
    for name in ("strong_train", "weak_train", "stream", "candidates", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:
        settings = replace(config.from_args(args), learner=args.learner, policy="epsilon_greedy:epsilon=0.1").validated()
    except config.ConfigError as exc:
        p.error(str(exc))
    ds = load("movielens", limit=args.strong_train + args.stream)
    train, stream = ds.records[: args.strong_train], ds.records[args.strong_train:]
    catalog = [events.Item(c["id"], c.get("features") or {}) for c in ds.catalog]
    print(f"data: {ds.source}, strong trains on {len(train)} ratings, weak on {args.weak_train}, "
          f"{len(stream)} streamed", file=sys.stderr)
    strong = training.train(train, training.TrainOptions(epochs=3, progress=False), version="strong", seed=0)
    weak = training.train(train[: args.weak_train], training.TrainOptions(epochs=1, progress=False),
                          version="weak", seed=0)
    y = np.array([float(r["reward"]) for r in stream])
    results = []
    for arm in ARMS:
        r = run_arm(arm, settings, weak, strong, stream, catalog, n_candidates=args.candidates, batch=args.batch,
                    eta=args.eta, gamma=args.gamma, loss_scale=args.loss_scale)
        r["rmse"] = rmse(r["pred"], y)
        print(f"{arm:13s} rmse {r['rmse']:.4f}  strong answered {r['strong_answered'].mean():.1%}  "
              f"{r['wall_s']:.1f}s", file=sys.stderr)
        results.append(r)
    write(args.out, results, y, ds.source, vars(args))
    return 0


def write(out: Path, results: list[dict], y: np.ndarray, source: str, params: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    lines = ["| arm | RMSE | strong version answered | final weight of strong | CPU s |", "|---|---|---|---|---|"]
    for r in results:
        w = r["weight"][np.isfinite(r["weight"])]
        lines.append(f"| {r['arm']} | {r['rmse']:.4f} | {r['strong_answered'].mean():.1%} | "
                     f"{(f'{w[-200:].mean():.3f}' if len(w) else '-')} | {r['cpu_s']:.1f} |")
    shadow = next(r["shadow_rmse"] for r in results if r["arm"] == "shadow")
    text = "\n".join(lines) + f"\n\nShadow errors (weak live, strong scored beside it): {shadow}\n"
    (out / "selection.md").write_text(text)
    print(text)
    doc = {"source": source, "params": {k: str(v) for k, v in params.items()}, "n": len(y),
           "arms": [{"arm": r["arm"], "rmse": r["rmse"], "strong_answered": float(r["strong_answered"].mean()),
                     "cpu_s": r["cpu_s"], "wall_s": r["wall_s"], "shadow_rmse": r["shadow_rmse"],
                     "strong_weight": [None if not np.isfinite(x) else round(float(x), 4) for x in r["weight"][::50]]}
                    for r in results]}
    (out / "selection.json").write_text(json.dumps(doc, indent=1))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    m = max(1, min(200, len(y) // 5))  # decisions come from every partition's selector: the curve is their mean over m decisions
    for r in results:
        if r["arm"] in ("exp3", "exp4"):
            w = np.convolve(r["weight"], np.ones(m) / m, "valid")
            ax1.plot(np.arange(m - 1, len(y)), w, label=f"{r['arm']}: weight of the strong version")
    ax1.set_xlabel("rating streamed")
    ax1.set_ylabel(f"selector's weight (mean of {m} decisions)")
    ax1.set_ylim(0, 1.02)
    ax1.legend(loc="lower right")
    ax1.set_title("Exp3 / Exp4 move to the better feature net")
    k = max(1, min(500, len(y) // 3))
    for r in results:
        err = (r["pred"] - y) ** 2
        ok = np.isfinite(err)
        roll = np.sqrt(np.convolve(np.where(ok, err, 0), np.ones(k), "valid") / np.maximum(
            np.convolve(ok.astype(float), np.ones(k), "valid"), 1))
        label = "shadow (shows = weak alone)" if r["arm"] == "shadow" else r["arm"]
        ax2.plot(np.arange(k - 1, len(y)), roll, label=f"{label} ({r['rmse']:.3f})",
                 linestyle=":" if r["arm"] == "shadow" else "-")
    ax2.set_xlabel("rating streamed")
    ax2.set_ylabel(f"rolling RMSE ({k} ratings)")
    ax2.legend(fontsize=8)
    ax2.set_title("prequential RMSE per arm")
    fig.tight_layout()
    fig.savefig(out / "selection.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
