"""The IDK cascade: escalated fraction, latency and RMSE against always-cheap and always-expensive.

``python -m benchmarks.cascade [--rate 100] [--duration-s 15] [--escalate 0.25,0.5]``

The two real feature nets of :mod:`benchmarks.serving_load` (cheap: linear, d = 4;
expensive: an MLP with two hidden layers of 1024), trained on the first half of
MovieLens-100K, serve held-out ratings as queries of ``--candidates`` movies through a
live ``eddy worker`` at one offered rate: always cheap (the cheap net live, no cascade),
always expensive (the wide net live, no cascade), and the cascade with margins chosen so
that the given fractions of queries escalate on the query pool (the calibration: the
cheap model's top-two margins under its offline user weights, computed before the run).
For each: the fraction escalated, p50/p99 from the query's scheduled time to the
prediction read back, the worker's feature-net time per query, and the RMSE of the
answering model's score for the rated movie. The offline curve over every margin (the
same scores, computed in-process) is plotted with the live points. Writes
``benchmarks/results/cascade-<timestamp>.json`` and ``.png`` and prints a table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks import serving_load
from stream.engine.cascade import top_two_margin


def main(argv: list[str] | None = None) -> int:
    from stream import config

    p = argparse.ArgumentParser(prog="python -m benchmarks.cascade", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=100.0, help="offered queries/s (default 100)")
    p.add_argument("--duration-s", type=float, default=15.0, help="seconds of load per configuration (default 15)")
    p.add_argument("--escalate", default="0.25,0.5",
                   help="target escalated fractions of the cascade runs, comma-separated (default 0.25,0.5)")
    p.add_argument("--candidates", type=int, default=20, help="candidates per query (default 20)")
    p.add_argument("--n-train", type=int, default=50_000, help="ratings the nets are trained on (default 50000)")
    args = p.parse_args(argv)
    try:
        targets = [float(x) for x in args.escalate.split(",")]
        if not all(0 < x < 1 for x in targets):
            raise ValueError
    except ValueError:
        p.error(f"--escalate must be fractions in (0, 1) separated by commas, got {args.escalate!r}")
    if not args.rate > 0 or not args.duration_s > 0:
        p.error("--rate and --duration-s must be > 0")
    base = config.from_env()
    ds, train, test = serving_load.dataset(args.n_train)
    cheap, wide = serving_load.models(train)
    qs = serving_load.queries(test, ds.catalog, int(args.rate * args.duration_s), args.candidates)
    y = np.array([q[4] for q in qs])
    s_cheap, every_cheap = serving_load.offline_scores(cheap, qs)
    m_cheap = np.array([top_two_margin(s) for s in every_cheap])
    s_wide, _ = serving_load.offline_scores(wide, qs)
    margins = [float(np.quantile(m_cheap, t)) for t in targets]
    curve = []
    for m in np.quantile(m_cheap, np.linspace(0, 1, 41)):
        esc = m_cheap < m
        curve.append({"margin": float(m), "escalated": float(esc.mean()),
                      "rmse": float(np.sqrt(np.mean((np.where(esc, s_wide, s_cheap) - y) ** 2)))})
    configs = [("always cheap", [wide, cheap], {}), ("always expensive", [cheap, wide], {})]
    configs += [(f"cascade margin {m:.3g}", [cheap, wide], {"cascade_cheap_version": cheap.version,
                                                             "cascade_margin": m}) for m in margins]
    runs = []
    for name, nets, overrides in configs:
        print(f"{name} at {args.rate:g}/s for {args.duration_s:g} s ...", flush=True)
        res = serving_load.run(base, nets, qs, rate=args.rate, duration_s=args.duration_s, deadline_ms=None,
                               overrides=overrides)
        res.pop("scores")
        res["name"] = name
        res["margin"] = overrides.get("cascade_margin")
        res["escalated"] = res["versions"].get(wide.version, 0) / max(1, res["answered"])
        runs.append(res)
        print("  " + _line(res), flush=True)
    out = {**serving_load.result_header("cascade", args, ds.source),
           "models": {m.version: serving_load.net_summary(m) for m in (cheap, wide)},
           "runs": runs, "offline_curve": curve}
    serving_load.write_results(out, plot, table)
    return 0


def _line(r: dict) -> str:
    p99 = "never" if r["p99_ms"] is None else f"{r['p99_ms']:.1f} ms"
    return (f"escalated {100 * r['escalated']:.1f}%  answered {r['answered']}/{r['sent']}  p50 {r['p50_ms']:.1f} ms  "
            f"p99 {p99}  RMSE {r['rmse']:.4f}")


def table(r: dict) -> str:
    rows = ["| configuration | escalated | answered | p50 | p99 | in the worker p50 / p99 | load average | "
            "RMSE vs rating |", "|---|---|---|---|---|---|---|---|"]
    for s in r["runs"]:
        p99 = "never" if s["p99_ms"] is None else f"{s['p99_ms']:.1f} ms"
        inside = (f"{s['worker_p50_ms']:.1f} / {s['worker_p99_ms']:.1f} ms" if s.get("worker_p50_ms") is not None
                  else "n/a")
        rows.append(f"| {s['name']} | {100 * s['escalated']:.1f}% | {s['answered']:,}/{s['sent']:,} | "
                    f"{s['p50_ms']:.1f} ms | {p99} | {inside} | {s.get('load_average_1m', float('nan')):.1f} | "
                    f"{s['rmse']:.4f} |")
    return "\n".join(rows)


def plot(r: dict, path: Path) -> None:
    from benchmarks.plots import saved_figure

    with saved_figure(path, ncols=2, figsize=(10, 4)) as (fig, (a, b)):
        curve = r["offline_curve"]
        a.plot([100 * c["escalated"] for c in curve], [c["rmse"] for c in curve], "-", color="grey",
               label="offline, every margin")
        for s in r["runs"]:
            a.plot(100 * s["escalated"], s["rmse"], "o", label=s["name"])
            b.bar(s["name"].replace("cascade ", "cascade\n"), s["p99_ms"] or 0, color="tab:orange", alpha=0.6)
            b.bar(s["name"].replace("cascade ", "cascade\n"), s["p50_ms"], color="tab:blue")
        a.set(xlabel="queries escalated to the expensive net (%)", ylabel="RMSE vs rating", title="accuracy")
        b.set(ylabel="latency (ms): p50 (blue), p99 (orange)", title=f"latency at {r['args']['rate']:g} queries/s")
        b.tick_params(axis="x", labelsize=7)
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
        fig.suptitle(f"IDK cascade: linear d=4 (cheap) -> MLP {r['models'][next(reversed(r['models']))]['hidden']} "
                     f"(expensive), {r['args']['candidates']} candidates ({r['dataset']})")


if __name__ == "__main__":
    raise SystemExit(main())
