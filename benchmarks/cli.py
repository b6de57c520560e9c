"""``python -m benchmarks`` / ``eddy bench``: run the benchmarks, write the results, regenerate BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from stream import config
from stream.argtypes import existing_file
from stream.config import REPO_ROOT

DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results"


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in _floats(text))


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    from benchmarks.plan import PHASES
    from benchmarks.systems import SYSTEMS

    p.add_argument("--quick", action="store_true",
                   help="every benchmark briefly (proves the harness works; the numbers mean nothing)")
    p.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT,
                   help="where <timestamp>.json and the PNG plots go (default: benchmarks/results)")
    p.add_argument("--markdown", type=Path, default=None,
                   help="the report to (re)generate (default: BENCHMARKS.md at the repo root when --output-dir "
                        "is the default, else OUTPUT_DIR/BENCHMARKS.md)")
    p.add_argument("--feedback-ratio", type=float, default=None,
                   help="feedback events sent per answered query (default 0.2)")
    p.add_argument("--rates", type=_floats, default=None, metavar="R1,R2,...",
                   help="offered query rates per second, ramped until saturation")
    p.add_argument("--step-seconds", type=float, default=None, dest="step_s", help="length of each load step")
    p.add_argument("--systems", type=_names, default=None, metavar="NAME,...",
                   help=f"systems to run (default all: {','.join(s.name for s in SYSTEMS)})")
    p.add_argument("--users", type=_ints, default=None, metavar="N1,N2,...",
                   help="population sizes for the cost-per-user benchmark (default 1000,100000,1000000)")
    p.add_argument("--skip", type=_names, default=None, metavar="PHASE,...",
                   help=f"phases to leave out: {', '.join(PHASES)}")
    p.add_argument("--topic-prefix", default=None,
                   help="prefix of every topic and Redis key the run creates (default bench<timestamp>-); "
                        "all are deleted at the end")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--quiet-load", type=float, default=None, metavar="LOAD",
                   help="on a shared machine: before each system, wait up to 3 min for the 1-minute load "
                        "average to fall below LOAD (recorded per system either way)")
    p.add_argument("--from-json", type=lambda t: Path(existing_file(t)), default=None, metavar="FILE",
                   help="run nothing: redraw the plots and regenerate the markdown from a result file")
    config.add_arguments(p, only=("bootstrap", "redis_url"))


def _write_report(results: dict, json_path: Path, out_dir: Path, md_path: Path) -> None:
    from benchmarks import plots, report

    stem = json_path.stem
    drawn = plots.draw_all(results, out_dir, stem)
    md_path.write_text(report.render(results, drawn, md_path, json_path))
    print(f"wrote {md_path} and {len(drawn)} plots in {out_dir}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from benchmarks.plan import make_plan
    from benchmarks.runner import Run
    from benchmarks.summary import summarize

    out_dir = args.output_dir.resolve()
    md_path = args.markdown or (REPO_ROOT / "BENCHMARKS.md" if out_dir == DEFAULT_OUTPUT.resolve()
                                else out_dir / "BENCHMARKS.md")
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        results["summary"] = summarize(results)
        _write_report(results, args.from_json.resolve(), args.from_json.resolve().parent, md_path)
        return 0
    plan = make_plan(quick=args.quick, feedback_ratio=args.feedback_ratio, rates=args.rates, step_s=args.step_s,
                     systems=args.systems, users=args.users, skip=args.skip, topic_prefix=args.topic_prefix,
                     seed=args.seed, quiet_load=args.quiet_load)
    settings = config.from_args(args)
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: systems stopped, topics and keys deleted
    t0 = time.monotonic()
    results = Run(plan, settings).run()
    results["summary"] = summarize(results)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(results["started_at"]))
    json_path = out_dir / f"{stamp}{'-quick' if plan.quick else ''}.json"
    json_path.write_text(json.dumps(results, indent=1, allow_nan=False))
    print(f"wrote {json_path} after {(time.monotonic() - t0) / 60:.1f} min", file=sys.stderr)
    _write_report(results, json_path, out_dir, md_path)
    failed = [n for n, s in results["systems"].items() if s.get("error")]
    if failed:
        print(f"benchmarks: {', '.join(failed)} failed (see {md_path})", file=sys.stderr)
        return 1
    return 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from features.errors import EddyError

    from stream.argtypes import OneLineParser

    parser = OneLineParser(prog="python -m benchmarks", description=__doc__)  # errors in one line
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except EddyError as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
