"""PNG plots of a result file: latency CDFs per system, all systems at one rate, p99 against offered load."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"eddy-eos": "tab:blue", "eddy-eos-2w": "tab:purple", "eddy-eos-fsync": "tab:olive", "eddy-alo": "tab:cyan",  "floor-eos": "tab:gray", "floor-alo": "silver",
          "naive": "tab:red", "http": "tab:orange"}


def _cdf(step: dict) -> tuple[list[float], list[float]]:
    pts = [(v, f) for v, f in step["latency_ms"]["cdf"] if v is not None]
    return [max(v, 1e-3) for v, _ in pts], [f for _, f in pts]


def cdf_per_system(name: str, system: dict, path: Path, slo_ms: float) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    cmap = plt.get_cmap("viridis")
    steps = system["steps"]
    for i, step in enumerate(steps):
        x, y = _cdf(step)
        label = f"{step['rate']:g}/s" + (" (saturated)" if step["saturated"] else "")
        ax.plot(x, y, color=cmap(i / max(1, len(steps) - 1)), label=label, ls="--" if step["saturated"] else "-")
    ax.axvline(slo_ms, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("latency from scheduled send to answer consumed (ms, log)")
    ax.set_ylabel("fraction of queries")
    ax.set_title(f"{system['title']}: latency CDF per offered rate", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cdf_all(systems: dict, rate: float, path: Path, slo_ms: float) -> Path | None:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = 0
    for name, system in systems.items():
        step = next((s for s in system["steps"] if s["rate"] == rate), None)
        if step is None:
            continue
        x, y = _cdf(step)
        ax.plot(x, y, color=COLORS.get(name), label=system["title"])
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.axvline(slo_ms, color="k", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log)")
    ax.set_ylabel("fraction of queries")
    ax.set_title(f"All systems at {rate:g} queries/s", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def p99_vs_load(systems: dict, path: Path, slo_ms: float, cap_ms: float) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, system in systems.items():
        rates, p99 = [], []
        for s in system["steps"]:
            rates.append(s["rate"])
            p99.append(min(s["latency_ms"]["p99"] or cap_ms, cap_ms))
        ax.plot(rates, p99, marker="o", ms=3, color=COLORS.get(name), label=system["title"])
    ax.axhline(slo_ms, color="k", lw=0.8, ls=":", label=f"{slo_ms:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (queries/s, log)")
    ax.set_ylabel(f"p99 latency (ms, log; capped at {cap_ms:g})")
    ax.set_title("p99 latency against offered load", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
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
    return out
