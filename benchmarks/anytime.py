"""Anytime predictions under overload: answers on time and their accuracy cost, against exact answers.

``python -m benchmarks.anytime [--rates 30,60,120] [--duration-s 12] [--deadline-ms 150]``

A live ``eddy worker`` serves the expensive feature net of :mod:`benchmarks.serving_load`
(an MLP with two hidden layers of 1024, trained on the first half of MovieLens-100K) to
queries of 50 candidates each (one held-out rating plus 49 other movies), offered open-loop
at each rate, twice: exact (no deadline) and anytime (``deadline_ms``, reserve
``--reserve-ms``, chunks of ``--chunk-rows``). The highest rate is above what the exact path sustains on this machine.
For each step: the share of queries answered within the deadline (measured by the client,
from the query's scheduled time to the prediction read back; unanswered ones are late),
p50/p99, the share of queries with approximated candidates, the RMSE of the rated movie's
score against the rating, and the RMSE of that score against the exact one (the same user
weights over exact features, computed offline). Writes
``benchmarks/results/anytime-<timestamp>.json`` and ``.png`` and prints a table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks import serving_load


def main(argv: list[str] | None = None) -> int:
    from stream import config

    p = argparse.ArgumentParser(prog="python -m benchmarks.anytime", description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="30,60,120", help="offered query rates, comma-separated (default 30,60,120)")
    p.add_argument("--duration-s", type=float, default=12.0, help="seconds of load per step (default 12)")
    p.add_argument("--deadline-ms", type=float, default=150.0, help="each query's deadline (default 150)")
    p.add_argument("--reserve-ms", type=float, default=20.0,
                   help="deadline_reserve_ms of the anytime worker (default 20)")
    p.add_argument("--chunk-rows", type=int, default=64,
                   help="anytime_chunk_rows of the anytime worker (default 64)")
    p.add_argument("--candidates", type=int, default=50, help="candidates per query (default 50)")
    p.add_argument("--n-train", type=int, default=50_000, help="ratings the nets are trained on (default 50000)")
    args = p.parse_args(argv)
    try:
        rates = [float(r) for r in args.rates.split(",")]
        if not rates or min(rates) <= 0:
            raise ValueError
    except ValueError:
        p.error(f"--rates must be positive numbers separated by commas, got {args.rates!r}")
    base = config.from_env()
    ds, train, test = serving_load.dataset(args.n_train)
    cheap, wide = serving_load.models(train)
    n = int(max(rates) * args.duration_s)
    qs = serving_load.queries(test, ds.catalog, n, args.candidates)
    reference, _ = serving_load.offline_scores(wide, qs)
    steps = []
    for rate in rates:
        for mode, overrides in (("exact", {}), ("anytime", {"deadline_ms": args.deadline_ms,
                                                           "deadline_reserve_ms": args.reserve_ms,
                                                           "anytime_chunk_rows": args.chunk_rows})):
            print(f"{mode} at {rate:g}/s for {args.duration_s:g} s ...", flush=True)
            res = serving_load.run(base, [cheap, wide], qs, rate=rate, duration_s=args.duration_s,
                                   deadline_ms=args.deadline_ms, overrides=overrides)
            scores = res.pop("scores")
            idx = np.array(sorted(scores), dtype=int)
            got = np.array([scores[i] for i in idx])
            res["rmse_vs_exact"] = float(np.sqrt(np.mean((got - reference[idx % len(qs)]) ** 2))) if len(idx) else None
            res["mode"] = mode
            steps.append(res)
            print("  " + _line(res), flush=True)
    out = {**serving_load.result_header("anytime", args, ds.source),
           "model": {"version": wide.version, **serving_load.net_summary(wide)},
           "steps": steps}
    serving_load.write_results(out, plot, table)
    return 0


def _line(r: dict) -> str:
    return (f"on time {100 * r['on_time']:.1f}%  answered {r['answered']}/{r['sent']}  p50 {_ms(r['p50_ms'])}  "
            f"p99 {_ms(r['p99_ms'])}  approximated {100 * (r['approximated_queries'] or 0):.1f}% of queries  "
            f"RMSE {r['rmse']:.4f}  vs exact {r['rmse_vs_exact']:.4f}")


def _ms(x) -> str:
    return "never" if x is None else f"{x:,.0f} ms"


def table(r: dict) -> str:
    rows = ["| offered rate | mode | on time (<= %g ms) | answered | p50 | p99 | load average | queries approximated "
            "| RMSE vs rating | RMSE vs exact score |" % r["args"]["deadline_ms"], "|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["steps"]:
        rows.append(f"| {s['rate']:g}/s | {s['mode']} | {100 * s['on_time']:.1f}% | {s['answered']:,}/{s['sent']:,} | "
                    f"{_ms(s['p50_ms'])} | {_ms(s['p99_ms'])} | {s.get('load_average_1m', float('nan')):.1f} | "
                    f"{100 * (s['approximated_queries'] or 0):.1f}% | {s['rmse']:.4f} | {s['rmse_vs_exact']:.4f} |")
    return "\n".join(rows)


def plot(r: dict, path: Path) -> None:
    from benchmarks.plots import saved_figure

    with saved_figure(path, ncols=2, figsize=(10, 4)) as (fig, (a, b)):
        for mode, style, color in (("exact", "o-", "tab:blue"), ("anytime", "s-", "tab:orange")):
            steps = [s for s in r["steps"] if s["mode"] == mode]
            rates = [s["rate"] for s in steps]
            a.plot(rates, [100 * s["on_time"] for s in steps], style, color=color, label=mode)
            b.plot(rates, [s["rmse"] for s in steps], style, color=color, label=f"{mode}: vs rating")
            b.plot(rates, [s["rmse_vs_exact"] for s in steps], style.replace("-", "--"), color=color, alpha=0.6,
                   label=f"{mode}: vs exact score")
        a.set(xlabel="offered queries/s", ylabel=f"answered within {r['args']['deadline_ms']:g} ms (%)", ylim=(0, 105),
              title="answers on time")
        b.set(xlabel="offered queries/s", ylabel="RMSE", title="accuracy cost")
        for ax in (a, b):
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(f"Anytime predictions, {r['model']['version']} MLP {r['model']['hidden']}, "
                     f"{r['args']['candidates']} candidates/query ({r['dataset']})")


if __name__ == "__main__":
    raise SystemExit(main())
