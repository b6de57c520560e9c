"""One system across several result files: p99 and answers per second against offered load, side by side.

    python -m benchmarks.compare_runs --system eddy-eos --out PNG LABEL=RESULT.json [LABEL=RESULT.json ...]

For comparing two commits on a shared machine: run ``python -m benchmarks --systems NAME`` from
each commit in turn, A B A B (the machine drifts; pairs taken in turn keep the comparison fair),
then draw every run of the system here, one line per file, with a table of the same figures
printed. Labels repeat when a commit ran more than once (its lines share a colour).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.plots import saved_figure


def steps(path: Path, system: str) -> list[dict]:
    """``[{rate, p99, answered_per_s}]`` of ``system``'s load steps in the result file at ``path``."""
    results = json.loads(path.read_text())
    if system not in results.get("systems", {}):
        raise SystemExit(f"compare_runs: {path} has no system {system!r} (it has {sorted(results.get('systems', {}))})")
    return [{"rate": s["rate"], "p99": s["latency_ms"]["p99"], "answered_per_s": s["throughput"]}
            for s in results["systems"][system]["steps"]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare_runs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", default="eddy-eos")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    ap.add_argument("runs", nargs="+", metavar="LABEL=RESULT.json")
    args = ap.parse_args(argv)
    runs = []
    for spec in args.runs:
        label, sep, file = spec.partition("=")
        if not sep or not label or not Path(file).is_file():
            ap.error(f"{spec!r}: give LABEL=RESULT.json, an existing result file")
        runs.append((label, Path(file), steps(Path(file), args.system)))
    colors = {label: f"C{i}" for i, label in enumerate(dict.fromkeys(label for label, _, _ in runs))}
    with saved_figure(args.out, ncols=2, figsize=(11, 4)) as (_, (p99, answered)):
        for label, file, rows in runs:
            rates = [r["rate"] for r in rows]
            p99.plot(rates, [r["p99"] for r in rows], marker="o", color=colors[label], label=f"{label} ({file.stem})")
            answered.plot(rates, [r["answered_per_s"] for r in rows], marker="o", color=colors[label])
        p99.set(xscale="log", yscale="log", xlabel="offered queries/s", ylabel="p99 ms", title=f"{args.system}: p99")
        answered.set(xscale="log", yscale="log", xlabel="offered queries/s", ylabel="answered/s",
                     title=f"{args.system}: answered per second")
        p99.legend(fontsize=7)
    print(f"| run | file | {' | '.join(f'{r:g}/s p99 ms, answered/s' for r in [s['rate'] for s in runs[0][2]])} |")
    for label, file, rows in runs:
        print(f"| {label} | {file.name} | " + " | ".join(f"{r['p99']:.1f}, {r['answered_per_s']:,.0f}" for r in rows) + " |")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
