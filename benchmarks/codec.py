"""Decode and encode cost per event, with plain ``json`` beside it as a reference.

``python -m benchmarks.codec`` times :mod:`stream.events` on four events as the
worker sees them (a query with 10 candidates, a feedback, the decision and the
prediction for that query), writes ``benchmarks/results/codec-<timestamp>.json``
and prints a table. ``--baseline PATH`` also times another copy of the module
(the figures before msgspec: ``git show f9d5ebb~1:stream/events.py >
/tmp/old_events.py``, then ``--baseline /tmp/old_events.py``); the two take turns
figure by figure, so a load that drifts hits both alike. Each figure is the best
of ``--repeat`` timings of an automatically sized loop: noise only adds time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
import timeit
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"
N_CANDIDATES = 10


def load_events(path: str | None) -> ModuleType:
    """``stream.events``, or the module at ``path`` (an older copy, for a before/after)."""
    if path is None:
        from stream import events

        return events
    spec = importlib.util.spec_from_file_location("events_under_test", path)
    if not Path(path).is_file() or spec is None or spec.loader is None:
        raise SystemExit(f"--baseline: no Python module at {path!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def sample_events(ev: ModuleType) -> dict[str, Any]:
    """The four events, built through the module's own constructors (their API is the same before and after)."""
    items = tuple(ev.Item(f"item-{i}", {"genre": ("drama", "comedy", "doc")[i % 3], "year": 1990.0 + i, "price": 9.5})
                  for i in range(N_CANDIDATES))
    context = {"device": "mobile", "hour": 21.0, "country": "fr"}
    query = ev.Query("r-100123", "user-4217", 1795459200.125, context, items, 1)
    scores = tuple(0.1 * i - 0.33 for i in range(N_CANDIDATES))
    pmf = tuple([0.01] * (N_CANDIDATES - 1) + [1 - 0.01 * (N_CANDIDATES - 1)])
    decision = ev.Decision("r-100123", "user-4217", 1795459200.125, context, items, scores, pmf, N_CANDIDATES - 1,
                           pmf[-1], "epsilon_greedy", "epsilon_greedy/1?epsilon=0.1", 8814237735533106019, "v3", 17)
    ranked = tuple(ev.RankedItem(items[i].id, scores[i], pmf[i]) for i in reversed(range(N_CANDIDATES)))
    prediction = ev.Prediction("r-100123", "user-4217", ranked, (ranked[0].item_id,), "v3", 17,
                               "epsilon_greedy/1?epsilon=0.1", 1.84, 1795459200.131)
    feedback = ev.Feedback("r-100123", "user-4217", "item-9", 1.0, 1795459203.5)
    return {"query": query, "feedback": feedback, "decision": decision, "prediction": prediction}


def _timers(ev: ModuleType) -> dict[str, dict[str, Callable[[], Any]]]:
    """``{event: {figure: callable}}`` for one events module."""
    decoders = {"query": ev.decode_query, "feedback": ev.decode_feedback, "decision": ev.decode_decision}
    out = {}
    for name, event in sample_events(ev).items():
        raw = ev.encode(event)
        plain = json.loads(raw)
        fns = {"encode_us": lambda e=event: ev.encode(e),
               "json_loads_us": lambda r=raw: json.loads(r),
               "json_dumps_us": lambda p=plain: json.dumps(p, separators=(",", ":")).encode()}
        if name in decoders:
            if decoders[name](raw) != event:
                raise SystemExit(f"{name} does not round-trip through {ev.__name__}")
            fns["decode_us"] = lambda r=raw, d=decoders[name]: d(r)
        out[name] = fns
    return out


def measure(modules: dict[str, ModuleType], repeat: int = 7) -> list[dict[str, Any]]:
    """Microseconds per event for each module; the modules take turns, so drifting load hits all alike."""
    timers = {label: _timers(ev) for label, ev in modules.items()}
    sizes = {label: {n: len(ev.encode(e)) for n, e in sample_events(ev).items()} for label, ev in modules.items()}
    first = next(iter(timers.values()))
    rows = {(label, name): {"events_module": label, "event": name, "bytes": sizes[label][name]}
            for name in first for label in timers}
    for name, figures in first.items():
        for figure in figures:
            plan = {label: timeit.Timer(t[name][figure]) for label, t in timers.items() if figure in t[name]}
            number = max(t.autorange()[0] for t in plan.values())
            best = dict.fromkeys(plan, float("inf"))
            for _ in range(repeat):
                for label, timer in plan.items():
                    best[label] = min(best[label], timer.timeit(number) / number * 1e6)
            for label, us in best.items():
                rows[label, name][figure] = round(us, 3)
    return list(rows.values())


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ("events_module", "event", "bytes", "decode_us", "json_loads_us", "encode_us", "json_dumps_us")
    width = max(13, *(len(str(r["events_module"])) for r in rows))
    lines = ["  ".join(f"{c:>{width}}" for c in cols)]
    for r in rows:
        cells = [f"{r[c]:{width}.2f}" if isinstance(r.get(c), float) else f"{r.get(c, '-'):>{width}}" for c in cols]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.codec", description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="PATH",
                        help="also time this copy of stream/events.py (an older one), taking turns with the current")
    parser.add_argument("--repeat", type=int, default=7, help="timings per figure; the best is kept (default 7)")
    parser.add_argument("--out", metavar="DIR", default=str(RESULTS), help="where codec-<timestamp>.json goes")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    modules = {"stream.events": load_events(None)}
    if args.baseline:
        modules = {"baseline": load_events(args.baseline), **modules}
    rows = measure(modules, args.repeat)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    doc = {"schema": "eddy.bench.codec/1", "started_at": stamp, "baseline": args.baseline,
           "python": platform.python_version(), "machine": platform.machine(), "repeat": args.repeat,
           "candidates": N_CANDIDATES, "unit": "microseconds per event, best of repeat", "rows": rows}
    try:
        import msgspec

        doc["msgspec"] = msgspec.__version__
    except ImportError:
        pass
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"codec-{stamp}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(_table(rows))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
