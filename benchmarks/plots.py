"""PNG plots of a result file: latency CDFs per system, all systems at one rate, p99 against offered load,
batch sizes over the ramp, when the slow steps' tails happened, and where the machine's cores went by rate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"eddy-eos": "tab:blue", "eddy-eos-2w": "tab:purple", "eddy-eos-fsync": "tab:olive", "eddy-alo": "tab:cyan",  "floor-eos": "tab:gray", "floor-alo": "silver",
          "naive": "tab:red", "http": "tab:orange"}


@contextmanager
def saved_figure(path: Path, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.0)) -> Iterator[tuple]:
    """``(figure, axes)`` of one row of ``ncols`` plots to draw on; when the block ends, laid out and
    written to ``path`` (PNG, 110 dpi). Closed in any case: pyplot keeps every open figure."""
    fig, axes = plt.subplots(1, ncols, figsize=figsize)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)


def _cdf(step: dict) -> tuple[list[float], list[float]]:
    pts = [(v, f) for v, f in step["latency_ms"]["cdf"] if v is not None]
    return [max(v, 1e-3) for v, _ in pts], [f for _, f in pts]


def _cdf_axes(ax, slo_ms: float, xlabel: str, title: str) -> None:
    ax.axvline(slo_ms, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of queries")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")


def cdf_per_system(name: str, system: dict, path: Path, slo_ms: float) -> Path:
    with saved_figure(path) as (_, ax):
        cmap = plt.get_cmap("viridis")
        steps = system["steps"]
        for i, step in enumerate(steps):
            x, y = _cdf(step)
            label = f"{step['rate']:g}/s" + (" (saturated)" if step["saturated"] else "")
            ax.plot(x, y, color=cmap(i / max(1, len(steps) - 1)), label=label, ls="--" if step["saturated"] else "-")
        _cdf_axes(ax, slo_ms, "latency from scheduled send to answer consumed (ms, log)",
                  f"{system['title']}: latency CDF per offered rate")
    return path


def cdf_all(systems: dict, rate: float, path: Path, slo_ms: float) -> Path | None:
    at_rate = {name: next((s for s in system["steps"] if s["rate"] == rate), None) for name, system in systems.items()}
    at_rate = {name: step for name, step in at_rate.items() if step is not None}
    if not at_rate:
        return None
    with saved_figure(path) as (_, ax):
        for name, step in at_rate.items():
            ax.plot(*_cdf(step), color=COLORS.get(name), label=systems[name]["title"])
        _cdf_axes(ax, slo_ms, "latency (ms, log)", f"All systems at {rate:g} queries/s")
    return path


def p99_vs_load(systems: dict, path: Path, slo_ms: float, cap_ms: float) -> Path:
    with saved_figure(path) as (_, ax):
        for name, system in systems.items():
            rates = [s["rate"] for s in system["steps"]]
            p99 = [min(s["latency_ms"]["p99"] or cap_ms, cap_ms) for s in system["steps"]]
            ax.plot(rates, p99, marker="o", ms=3, color=COLORS.get(name), label=system["title"])
        ax.axhline(slo_ms, color="k", lw=0.8, ls=":", label=f"{slo_ms:g} ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered load (queries/s, log)")
        ax.set_ylabel(f"p99 latency (ms, log; capped at {cap_ms:g})")
        ax.set_title("p99 latency against offered load", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return path


def batch_sizes(system: dict, path: Path, slo_ms: float) -> Path | None:
    """The worker's mean batch and AIMD limit over the ramp (:mod:`benchmarks.batch_watch`), with the
    offered rate of each step; None without a timeline inside the steps."""
    steps = system["steps"]
    if not steps or not system.get("batch_timeline"):
        return None
    t0, t1 = steps[0]["window"][0], steps[-1]["window"][1]
    points = [p for p in system["batch_timeline"] if t0 <= p["t"] <= t1]
    if not points:
        return None
    with saved_figure(path, figsize=(7.4, 4.0)) as (_, ax):
        t = [p["t"] - t0 for p in points]
        ax.plot(t, [p["mean_batch"] for p in points], marker=".", ms=3, lw=1, color="tab:blue",
                label="mean batch (records) per interval")
        ax.step(t, [p["limit"] for p in points], where="post", color="tab:green", ls="--", lw=1,
                label=f"AIMD limit (batch_slo_ms {slo_ms:g})")
        ax.set_yscale("log")
        ax.set_xlabel("seconds since the ramp's first step")
        ax.set_ylabel("records per batch (log)")
        ax.grid(True, which="both", alpha=0.3)
        rate = ax.twinx()
        ax.set_zorder(rate.get_zorder() + 1)  # the batches over the rate where they meet
        ax.patch.set_visible(False)
        for s in steps:
            a, b = s["window"][0] - t0, s["window"][1] - t0
            rate.hlines(s["rate"], a, b, color="tab:orange", lw=3, alpha=0.5)
        rate.set_yscale("log")
        rate.set_ylabel("offered queries/s (log)", color="tab:orange")
        ax.set_title(f"{system['title']}: batch size over the ramp", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    return path


def tail_timeline(system: dict, path: Path, slo_ms: float, most: int = 4) -> Path | None:
    """When each slow step's tail happened: for the first ``most`` unsaturated steps whose p99 passed
    ``slo_ms``, the median and the slowest answer per bin of send times (:func:`benchmarks.stats.timeline`),
    with Redis's AOF rewrites in the step shaded. None when no such step has a timeline."""
    steps = [s for s in system["steps"] if s.get("timeline") and not s["saturated"]
             and (s["latency_ms"]["p99"] or 0) > slo_ms][:most]
    if not steps:
        return None
    with saved_figure(path, ncols=len(steps), figsize=(4.2 * len(steps), 3.6)) as (_, axes):
        for ax, s in zip(axes if len(steps) > 1 else [axes], steps):
            tl = s["timeline"]
            t = [k * tl["bin_s"] for k in range(len(tl["p50"]))]
            ax.plot(t, tl["max"], color="tab:red", lw=0.8, label="slowest answer per bin")
            ax.plot(t, tl["p50"], color="tab:blue", lw=1, label="median per bin")
            ax.axhline(slo_ms, color="k", lw=0.8, ls=":")
            for k, (start, seconds) in enumerate(s.get("redis_aof_rewrites") or []):
                ax.axvspan(max(0.0, start), start + seconds, color="tab:orange", alpha=0.3,
                           label="Redis AOF rewrite" if k == 0 else None)
            ax.set_yscale("log")
            ax.set_xlim(0, s["duration_s"])
            ax.set_xlabel(f"seconds into the step (bins of {tl['bin_s']:g} s)")
            ax.set_ylabel("latency (ms, log)")
            ax.set_title(f"{s['rate']:g}/s: p99 {s['latency_ms']['p99']:.1f} ms", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, loc="upper left")
    return path


CORE_PARTS = (("system", "system under test", "tab:blue"), ("generator", "load generator", "tab:orange"),
              ("broker", "Kafka broker", "tab:gray"), ("redis", "Redis", "tab:red"), ("other", "other busy", "tab:brown"),
              ("steal", "steal", "black"), ("idle", "idle", "whitesmoke"))


def cores_by_rate(systems: dict, names: tuple[str, ...], path: Path) -> Path | None:
    """Stacked bars, one per step, of the cores each tenant used (:mod:`benchmarks.cpu_watch`), one panel per
    system of ``names`` that has the figures; None if none has."""
    shown = [n for n in names if any(s.get("cpu_cores") for s in systems.get(n, {}).get("steps", []))]
    if not shown:
        return None
    with saved_figure(path, ncols=len(shown), figsize=(4.6 * len(shown), 4.0)) as (_, axes):
        for ax, name in zip(axes if len(shown) > 1 else [axes], shown):
            steps = [s for s in systems[name]["steps"] if s.get("cpu_cores")]
            x = range(len(steps))
            bottom = [0.0] * len(steps)
            for key, label, color in CORE_PARTS:
                h = [s["cpu_cores"].get(key) or 0.0 for s in steps]
                ax.bar(x, h, bottom=bottom, color=color, label=label, edgecolor="k", lw=0.3)
                bottom = [b + v for b, v in zip(bottom, h)]
            ax.set_xticks(list(x), [f"{s['rate']:g}" for s in steps], rotation=60, fontsize=7)
            ax.set_xlabel("offered queries/s")
            ax.set_ylabel("cores")
            ax.set_title(f"{systems[name]['title']}: where the cores went", fontsize=9)
        ax.legend(fontsize=6, loc="upper left")
    return path


def draw_all(results: dict, out_dir: Path, stem: str) -> dict[str, Path]:
    slo = results["plan"]["slo_ms"]
    systems = results["systems"]
    out: dict[str, Path] = {}
    if not systems:
        return out
    out["p99_vs_load"] = p99_vs_load(systems, out_dir / f"{stem}-p99-vs-load.png", slo, results["plan"]["saturate_ms"])
    ran = [sys["steps"] for sys in systems.values() if sys["steps"]]
    common = set.intersection(*({s["rate"] for s in steps} for steps in ran)) if ran else set()
    if common:  # the highest rate every system sustained, else the lowest they share
        clean = [r for r in common if all(not s["saturated"] for steps in ran for s in steps if s["rate"] == r)]
        rate = max(clean) if clean else min(common)
        got = cdf_all(systems, rate, out_dir / f"{stem}-cdf-all-{rate:g}.png", slo)
        if got:
            out["cdf_all"] = got
    for name, system in systems.items():
        if system["steps"]:
            out[f"cdf_{name}"] = cdf_per_system(name, system, out_dir / f"{stem}-cdf-{name}.png", slo)
        got = batch_sizes(system, out_dir / f"{stem}-batches-{name}.png", system["config"].get("batch_slo_ms", 10.0))
        if got:
            out[f"batches_{name}"] = got
    if "eddy-eos" in systems:
        got = tail_timeline(systems["eddy-eos"], out_dir / f"{stem}-tail-timeline-eddy-eos.png", slo)
        if got:
            out["tail_timeline_eddy-eos"] = got
    got = cores_by_rate(systems, ("eddy-eos", "floor-eos", "http"), out_dir / f"{stem}-cores.png")
    if got:
        out["cores"] = got
    return out
