"""Replay's outputs: the console table, the JSON report and the PNG plot.

Table: one block per target policy, one row per estimator, figures to
:data:`SIGNIFICANT` significant digits (a click rate of 0.004512 keeps its
four digits; the JSON report keeps full precision)::

    policy   estimator       value  95% interval              ESS
    logging  ips            0.5123  [0.487, 0.538]         1487.0
             snips          0.5123  [0.487, 0.538]

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

__all__ = ["format_table", "write_json", "write_plot", "default_output", "sig", "SIGNIFICANT"]

SIGNIFICANT = 4


def default_output(kind: str, suffix: str, *, now: float | None = None) -> Path:
    """``reports/<kind>-<YYYYmmdd-HHMMSS>.<suffix>`` (reports/ is git-ignored)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return Path("reports") / f"{kind}-{stamp}.{suffix}"


def sig(v: float | None, digits: int = SIGNIFICANT) -> str:
    """``v`` to ``digits`` significant digits; ``n/a`` for None or NaN.

    >>> sig(0.0045123), sig(0.51234), sig(1234.5), sig(-0.0), sig(float("nan"))
    ('0.004512', '0.5123', '1234', '0', 'n/a')
    >>> sig(0.000012345)
    '1.234e-05'
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v + 0.0:.{digits}g}"  # + 0.0: never "-0"


def _num(v: float, width: int = 10) -> str:
    return f"{sig(v):>{width}}"


def format_table(results: Sequence[PolicyResult], *, on_policy_value: float, n_rounds: int, alpha: float = 0.05) -> str:
    """The console table (see the module docstring), warnings and notes under each policy."""
    width = max([len("policy")] + [len(r.label) for r in results])
    level = f"{100 * (1 - alpha):g}% interval"
    lines = [f"{'policy':<{width}}  {'estimator':<12}  {'value':>10}  {level:<24}  {'ESS':>9}"]
    lines.append("-" * len(lines[0]))
    for r in results:
        first = True
        for name, e in r.estimates.items():
            label = r.label if first else ""
            ess = f"{r.ess:>9.1f}" if first else ""
            if e.error:
                lines.append(f"{label:<{width}}  {name:<12}  {'n/a':>10}  {'undefined':<24}  {ess}".rstrip())
                lines.append(f"{'':<{width}}  ! {name}: {e.error}")
            else:
                interval = f"[{sig(e.lower)}, {sig(e.upper)}]" if not (math.isnan(e.lower) and math.isnan(e.upper)) \
                    else "none (--bootstrap 0)"
                lines.append(f"{label:<{width}}  {name:<12}  {_num(e.value)}  {interval:<24}  {ess}".rstrip())
            first = False
        for w in r.warnings:
            lines.append(f"{'':<{width}}  ! {w}")
        for n in r.notes:
            lines.append(f"{'':<{width}}  note: {n}")
    lines.append(f"on-policy average reward of the logging policy: {sig(on_policy_value)} over {n_rounds} decisions "
                 "(full precision in the JSON report)")
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
                   label=f"logging on-policy average ({sig(on_policy_value)})")
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
