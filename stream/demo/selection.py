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
from dataclasses import replace
from pathlib import Path

import numpy as np

from bandits import make_policy
from stream import events, training
from stream import config
from stream.config import Settings
from stream.demo.data import load
from stream.demo.engine_arms import stream_through_engine
from stream.demo.metrics import rmse
from stream.engine import Engine
from stream.engine.selection import Selection

ARMS = ("weak alone", "strong alone", "shadow", "exp3", "exp4")


def run_arm(arm: str, settings: Settings, weak, strong, stream: list[dict], catalog: list[events.Item], *,
            n_candidates: int, batch: int, eta: float, gamma: float, loss_scale: float) -> dict:
    """One arm over ``stream`` from a clean state (its own key prefix); returns predictions and weights."""
    live = strong if arm == "strong alone" else weak
    engine = Engine(live, make_policy(settings.policy), learner=settings.learner, join_window_s=600.0,
                    seed=settings.seed)
    if arm in ("shadow", "exp3", "exp4"):
        engine.serve_selection(Selection([strong], mode=arm, eta=eta, gamma=gamma, loss_scale=loss_scale))
    run = stream_through_engine(engine, settings, stream, catalog, n=len(stream), n_candidates=n_candidates,
                                batch=batch, prefix="sel")
    # the strong version's weight when rating i was decided, and whether it answered
    weight = np.array([d.version_weights.get(strong.version, np.nan) for d in run.decisions])
    answered_by_strong = np.array([d.feature_net_version == strong.version for d in run.decisions])
    return {"arm": arm, "pred": run.pred, "weight": weight, "strong_answered": answered_by_strong,
            "wall_s": run.wall_s, "cpu_s": run.cpu_s, "shadow_rmse": run.shadow_rmse}


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
