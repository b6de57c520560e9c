"""Replay's outputs: the console table, the JSON report and the PNG plot.

Table: one block per target policy, one row per estimator::

    policy            estimator     value   95% interval          ESS
    logging           ips          0.5123   [0.4870, 0.5380]   1487.0
                      snips        0.5123   [0.4870, 0.5380]

The plot (matplotlib, Agg backend, no display needed) draws every estimate
with its interval as an error bar, grouped by policy, and the logging
policy's on-policy average reward as a dashed reference line.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

from stream.replay.evaluate import PolicyResult

__all__ = ["format_table", "write_json", "write_plot", "default_output"]


def default_output(kind: str, suffix: str, *, now: float | None = None) -> Path:
    """``reports/<kind>-<YYYYmmdd-HHMMSS>.<suffix>`` (reports/ is git-ignored)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return Path("reports") / f"{kind}-{stamp}.{suffix}"


def _num(v: float, width: int = 8) -> str:
    return f"{'n/a':>{width}}" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:>{width}.4f}"


def format_table(results: Sequence[PolicyResult], *, on_policy_value: float, n_rounds: int, alpha: float = 0.05) -> str:
    """The console table (see the module docstring), warnings and notes under each policy."""
    width = max([len("policy")] + [len(r.label) for r in results])
    level = f"{100 * (1 - alpha):g}% interval"
    lines = [f"{'policy':<{width}}  {'estimator':<9}  {'value':>8}  {level:<20}  {'ESS':>9}"]
    lines.append("-" * len(lines[0]))
    for r in results:
        first = True
        for name, e in r.estimates.items():
            label = r.label if first else ""
            ess = f"{r.ess:>9.1f}" if first else ""
            if e.error:
                lines.append(f"{label:<{width}}  {name:<9}  {'n/a':>8}  {'undefined':<20}  {ess}".rstrip())
                lines.append(f"{'':<{width}}  ! {name}: {e.error}")
            else:
                interval = f"[{e.lower:.4f}, {e.upper:.4f}]"
                lines.append(f"{label:<{width}}  {name:<9}  {_num(e.value)}  {interval:<20}  {ess}".rstrip())
            first = False
        for w in r.warnings:
            lines.append(f"{'':<{width}}  ! {w}")
        for n in r.notes:
            lines.append(f"{'':<{width}}  note: {n}")
    lines.append(f"on-policy average reward of the logging policy: {on_policy_value:.4f} over {n_rounds} decisions")
    return "\n".join(lines)


def write_json(path: str | Path, report: dict[str, Any]) -> Path:
    """Write the report (NaN written as null) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, allow_nan=False, default=_jsonable) + "\n", encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_plot(path: str | Path, results: Sequence[PolicyResult], *, on_policy_value: float, title: str) -> Path:
    """Estimates with interval error bars, one group per policy, on-policy average as a reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(n for r in results for n in r.estimates))
    step = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(results) + 2), 4.5))
    try:
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for j, name in enumerate(names):
            xs, ys, lo, hi = [], [], [], []
            for i, r in enumerate(results):
                e = r.estimates.get(name)
                if e is None or e.error or math.isnan(e.value):
                    continue
                xs.append(i - 0.4 + step * (j + 0.5))
                ys.append(e.value)
                lo.append(max(0.0, e.value - e.lower))
                hi.append(max(0.0, e.upper - e.value))
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=name.upper(), color=colors[j % len(colors)])
        ax.axhline(on_policy_value, linestyle="--", color="gray", linewidth=1,
                   label=f"logging on-policy average ({on_policy_value:.3f})")
        ax.set_xticks(range(len(results)))
        ax.set_xticklabels([r.label for r in results], rotation=15, ha="right")
        ax.set_ylabel("estimated value (mean reward per decision)")
        ax.set_title(title)
        ax.legend(fontsize="small", loc="best")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path
