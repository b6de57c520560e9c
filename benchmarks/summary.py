"""Headline numbers derived from a result file (also stored in it under ``summary``)."""

from __future__ import annotations

import statistics

FLOOR_OF = {"eddy-eos": "floor-eos", "eddy-alo": "floor-alo"}


def max_rate_within(system: dict, slo_ms: float) -> float | None:
    """The highest offered rate whose p99 stayed <= ``slo_ms`` with every query answered."""
    ok = [s["rate"] for s in system["steps"]
          if not s["saturated"] and s["latency_ms"]["p99"] is not None and s["latency_ms"]["p99"] <= slo_ms]
    return max(ok) if ok else None


def saturation(system: dict) -> dict:
    steps = system["steps"]
    sat = next((s for s in steps if s["saturated"]), None)
    sustained = [s for s in steps if not s["saturated"]]
    return {"saturated_at": sat["rate"] if sat else None,
            "reason": sat["saturation_reason"] if sat else "not reached at the highest rate tried",
            "highest_sustained_rate": max((s["rate"] for s in sustained), default=None),
            "max_throughput": max((s["throughput"] for s in steps), default=None)}


def p50_over_floor(system: dict, floor: dict) -> dict:
    """Eddy's p50 minus the floor's p50 at each rate both answered in full."""
    fl = {s["rate"]: s["latency_ms"]["p50"] for s in floor["steps"] if not s["saturated"]}
    diffs = {s["rate"]: round(s["latency_ms"]["p50"] - fl[s["rate"]], 3) for s in system["steps"]
             if not s["saturated"] and s["rate"] in fl and s["latency_ms"]["p50"] is not None
             and fl[s["rate"]] is not None}
    return {"by_rate": diffs, "median": round(statistics.median(diffs.values()), 3) if diffs else None}


def summarize(results: dict) -> dict:
    slo = results["plan"]["slo_ms"]
    systems = results["systems"]
    out: dict = {"slo_ms": slo, "systems": {}}
    slos = [slo, *results["plan"].get("more_slos_ms", ())]
    for name, system in systems.items():
        entry = {"max_rate_p99_within_slo": max_rate_within(system, slo),
                 "max_rate_p99_within": {f"{x:g}": max_rate_within(system, x) for x in slos},
                 **saturation(system)}
        if name in FLOOR_OF and FLOOR_OF[name] in systems:
            entry["p50_minus_floor_ms"] = p50_over_floor(system, systems[FLOOR_OF[name]])
        for key in ("feedback_throughput", "learning_latency_ms"):
            if key in system:
                entry[key] = system[key]
        out["systems"][name] = entry
    http = out["systems"].get("http")
    for name in FLOOR_OF:
        entry = out["systems"].get(name)
        if entry is None or http is None:
            continue
        ratios = {}
        for key, e in entry["max_rate_p99_within"].items():
            h = http["max_rate_p99_within"][key]
            ratios[key] = round(e / h, 2) if e and h else None
        entry["vs_http_max_rate_ratio"] = ratios[f"{slo:g}"]
        entry["vs_http_max_rate_ratio_by_slo"] = ratios
        mt, ht = entry["max_throughput"], http["max_throughput"]
        entry["vs_http_max_throughput_ratio"] = round(mt / ht, 2) if mt and ht else None
    return out
