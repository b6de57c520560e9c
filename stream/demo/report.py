"""The demo's report: a table (stdout + report.md), report.json and prequential.png."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from stream.demo.metrics import prequential_curve, rmse, rolling_curve

COLUMNS = ("arm", "RMSE", "known users", "new users", "answered", "on time", "CPU s", "wall s")


def arm_rows(arms: list[dict], y: np.ndarray, known: np.ndarray) -> list[dict[str, Any]]:
    """One row per arm: prequential RMSE overall, on users in the offline training part, on new users."""
    rows = []
    for a in arms:
        p = a["pred"]
        rows.append({
            "key": a["key"], "arm": a["label"],
            "rmse": rmse(p, y), "rmse_known_users": rmse(p[known], y[known]), "rmse_new_users": rmse(p[~known], y[~known]),
            "answered": int(np.isfinite(p).sum()), "n": int(len(p)),
            "cpu_s": a.get("cpu_s"), "wall_s": a.get("wall_s"), "note": a.get("note", ""),
            "on_time": a.get("on_time"),
        })
    return rows


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(rows: list[dict]) -> str:
    """A markdown table (readable as plain text too)."""
    cells = [[f"({chr(97 + i)}) {r['arm']}", _fmt(r["rmse"]), _fmt(r["rmse_known_users"]), _fmt(r["rmse_new_users"]),
              f"{r['answered']}/{r['n']}", "-" if r.get("on_time") is None else f"{r['on_time']:.1%}",
              _fmt(r["cpu_s"], 1), _fmt(r["wall_s"], 1)] for i, r in enumerate(rows)]
    widths = [max(len(c), *(len(row[j]) for row in cells)) for j, c in enumerate(COLUMNS)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line(COLUMNS), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def plot(path: Path, arms: list[dict], y: np.ndarray, *, window: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)
    skip = min(500, len(y) // 10)  # the first few hundred ratings would only stretch the axis
    for i, a in enumerate(arms):
        label = f"({chr(97 + i)}) {a['label']}"
        x, v = prequential_curve(a["pred"], y)
        ax1.plot(x[x > skip], v[x > skip], label=label)
        x, v = rolling_curve(a["pred"], y, window=window)
        ax2.plot(x, v, label=label)
    ax1.set_title(f"prequential RMSE (cumulative, from rating {skip + 1})")
    ax2.set_title(f"prequential RMSE over the last {window} ratings")
    for ax in (ax1, ax2):
        ax.set_xlabel("ratings streamed (time order)")
        ax.set_ylabel("RMSE")
        ax.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out_dir: Path, *, rows: list[dict], arms: list[dict], y: np.ndarray, summary: dict[str, Any],
          window: int) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"report.md": out_dir / "report.md", "report.json": out_dir / "report.json",
             "prequential.png": out_dir / "prequential.png"}
    plot(paths["prequential.png"], arms, y, window=window, title=summary["title"])
    curves = {}
    for a in arms:
        x, v = prequential_curve(a["pred"], y, points=100)
        curves[a["key"]] = {"x": x.tolist(), "rmse": v.tolist()}
    doc = _clean({**summary, "arms": rows, "curves": curves})
    paths["report.json"].write_text(json.dumps(doc, indent=2, default=_json_default, allow_nan=False) + "\n")
    paths["report.md"].write_text(markdown(rows, summary))
    return paths


def _clean(v: Any) -> Any:
    """NaN and infinities (an arm with no new users, say) become null: strict JSON."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    return v


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


def _comparison(s: dict[str, Any]) -> list[str]:
    rel = s.get("hybrid_vs_biased_mf")
    if rel is None:
        return []
    word = "lower" if rel < 0 else "higher"
    return [f"**Eddy's live hybrid (b) against river's BiasedMF (d): {abs(rel):.2%} {word} prequential RMSE** "
            "(same stream, same run).", ""]


def _on_time(s: dict[str, Any]) -> list[str]:
    served = s.get("serving_layer") or {}
    if "deadline_ms" not in served:
        return []
    how = ("calibrated from the expensive net's exact arm: the reserve a worker keeps after the feature net, as "
           "measured over its batches, plus half its median feature-net time"
           if served.get("deadline_calibrated") else "given by --deadline-ms")
    return [f"On time: the share of answers within {served['deadline_ms']:.0f} ms of their query's ts ({how}); "
            "the engine arms time each batch from its queries' ts to its Redis commit, the live arm from sending "
            "the query to reading its prediction back; '-': arms that score in bulk, with no per-query answer.", "",
            *_same_ratings(served)]


def _same_ratings(served: dict[str, Any]) -> list[str]:
    same = served.get("rmse_same_ratings")
    if not same:
        return []
    return [f"RMSE on the first {served['n']} ratings only (those the engine arms served): "
            + ", ".join(f"{k} {v:.4f}" for k, v in same.items()) + ".", ""]


def markdown(rows: list[dict], s: dict[str, Any]) -> str:
    live = s["live"]
    lines = [
        f"# {s['title']}", "",
        f"- data: {s['data']['description']}",
    ]
    if s["data"].get("fallback_reason"):
        lines.append(f"- **MovieLens-100K was not available; this report is on the built-in simulator** "
                     f"({s['data']['fallback_reason']})")
    lines += [
        f"- split: the first {s['split']['n_train']} ratings by time train the feature net offline "
        f"(held-out val_rmse {_fmt(s['offline']['val_rmse'])} on their last {s['offline']['n_val']}); "
        f"the next {s['split']['n_stream']} are streamed in time order",
        f"- offline training: {_fmt(s['offline']['cpu_s'], 1)} s CPU, {_fmt(s['offline']['wall_s'], 1)} s wall "
        f"(shared by arms a-c, not in their columns)",
        f"- live arm: {live['ratings_per_s']:.0f} ratings/s ({live['events_per_s']:.0f} events/s through Kafka); "
        f"latency query -> prediction read back: one query at a time p50 "
        f"{_fmt(live.get('unloaded_latency_ms', {}).get('p50'), 1)} ms, "
        f"p99 {_fmt(live.get('unloaded_latency_ms', {}).get('p99'), 1)} ms; under the full stream p50 "
        f"{_fmt(live['latency_ms']['p50'], 1)} ms, p99 {_fmt(live['latency_ms']['p99'], 1)} ms (inside the worker p50 "
        f"{_fmt(live['worker_latency_ms']['p50'], 1)} ms); worker {live['worker']}, learner `{s['worker']['learner']}`, "
        f"policy `{s['worker']['policy']}`, {s['worker']['processing']}",
        "", table(rows), "",
        *_comparison(s),
        "RMSE: progressive validation (each rating predicted before it is learned from) over the whole stream; "
        "known users: users with ratings in the offline training part; new users: the rest. "
        "CPU s / wall s: time each arm spent on the stream (the live arm: the worker process's CPU time and "
        "the wall time of streaming every rating through Kafka).", "",
        *_on_time(s),
        "Arms:",
    ]
    lines += [f"- ({chr(97 + i)}) {r['arm']}: {r['note']}" for i, r in enumerate(rows)]
    lines += ["", "![prequential RMSE](prequential.png)", ""]
    return "\n".join(lines)
