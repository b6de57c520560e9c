"""Headline numbers derived from a result file (also stored in it under ``summary``)."""

from __future__ import annotations

import statistics

from benchmarks.redis_watch import rewrite_seconds

FLOOR_OF = {"eddy-eos": "floor-eos", "eddy-eos-2w": "floor-eos", "eddy-eos-fsync": "floor-eos", "eddy-alo": "floor-alo"}


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


def _step(system: dict, rate: float) -> dict | None:
    return next((s for s in system["steps"] if s["rate"] == rate), None)


def _floor_vs_http(floor: dict | None, http: dict, rates: list[float]) -> str:
    """Whether the at-least-once floor (Kafka with no work at all) itself beats HTTP's p99 at those rates:
    where it does not, no worker on Kafka can."""
    if floor is None or not rates:
        return ""
    pairs = [(f["latency_ms"]["p99"], _step(http, r)["latency_ms"]["p99"]) for r in rates
             if (f := _step(floor, r)) is not None and f["latency_ms"]["p99"] is not None]
    beats = sum(1 for f, h in pairs if f < h)
    return f"the at-least-once floor itself, no work at all: lower at {beats} of {len(pairs)}"


def idle_cores(system: dict, rates: list[float]) -> str | None:
    """The machine's idle cores in ``system``'s steps at ``rates`` (:mod:`benchmarks.cpu_watch`): near zero, the
    step ran on a saturated machine; None if no step has the figure.

    >>> idle_cores({"steps": [{"rate": 500.0, "cpu_cores": {"idle": 0.712}}, {"rate": 1000.0}]}, [500.0, 1000.0])
    'idle cores in those steps: 500/s 0.71, 1000/s n/a'
    """
    figures = [(r, (s.get("cpu_cores") or {}).get("idle")) for r in rates if (s := _step(system, r)) is not None]
    if not any(v is not None for _, v in figures):
        return None
    return "idle cores in those steps: " + ", ".join(f"{r:g}/s " + ("n/a" if v is None else f"{v:.2f}")
                                                     for r, v in figures)


def rewrites_in(system: dict, rates: list[float]) -> str | None:
    """Redis's AOF rewrites in ``system``'s steps at ``rates`` (:mod:`benchmarks.redis_watch`): a rewrite takes a
    core for a second or more, and the answers of those seconds wait; None if no step recorded them.

    >>> rewrites_in({"steps": [{"rate": 1500.0, "redis_aof_rewrites": []},
    ...                        {"rate": 2000.0, "redis_aof_rewrites": [[0.6, 1.2]]}]}, [1500.0, 2000.0])
    'AOF rewrites in them: 1500/s none, 2000/s 1.2 s'
    """
    figures = [(r, s.get("redis_aof_rewrites")) for r in rates if (s := _step(system, r)) is not None]
    if not any(v is not None for _, v in figures):
        return None
    return "AOF rewrites in them: " + ", ".join(
        f"{r:g}/s " + ("n/a" if v is None else rewrite_seconds(v) if v else "none") for r, v in figures)


def _bound(*parts: str | None) -> str | None:
    return "; ".join(p for p in parts if p) or None


def targets(results: dict, name: str = "eddy-eos") -> list[dict]:
    """The responsiveness targets, each against systems measured in the same run.

    Rows: ``target``, ``goal``, ``measured`` (text), ``met`` (True, False, or None when
    a system it needs did not run) and ``bound`` (text, or None): what the same run says no worker
    can beat on this machine, from the engine alone (``results["engine_ceiling"]``, per CPU-second:
    a worker is one Python process, so its engine gets at most one core) or from the Kafka floor.
    """
    sy = results["systems"]
    ceiling = results.get("engine_ceiling")
    q_best = max(ceiling["queries_per_cpu_s_median_batch"].items(), key=lambda kv: kv[1]) if ceiling else None
    eddy, alo, eos, http = sy.get(name), sy.get("floor-alo"), sy.get("floor-eos"), sy.get("http")
    rows: list[dict] = []
    if eddy is None:
        return rows
    if alo is not None:
        worst, ok, missed = [], True, []
        for s in eddy["steps"]:
            if s["rate"] > 2000:
                continue
            f = _step(alo, s["rate"])
            p99 = s["latency_ms"]["p99"]
            bound = max(20.0, 1.5 * f["latency_ms"]["p99"]) if f and f["latency_ms"]["p99"] is not None else 20.0
            good = not s["saturated"] and p99 is not None and p99 <= bound
            ok &= good
            missed += [] if good else [s["rate"]]
            worst.append(f"{s['rate']:g}/s: {'timeout' if p99 is None else f'{p99:.1f}'} vs {bound:.1f}"
                         + ("" if good else " (missed)"))
        rates_run = [s["rate"] for s in eddy["steps"]]
        ok &= bool(rates_run) and max(rates_run) >= 2000
        rows.append({"target": "p99 <= max(20 ms, 1.5 x at-least-once floor p99) at every rate up to 2,000/s",
                     "goal": "every rate", "measured": "; ".join(worst), "met": ok,
                     "bound": _bound(idle_cores(eddy, missed), rewrites_in(eddy, missed))})
        diffs = p50_over_floor(eddy, alo)["by_rate"]
        upto = {r: d for r, d in diffs.items() if r <= 1000}
        rows.append({"target": "p50 minus at-least-once floor p50, every rate up to 1,000/s",
                     "goal": "<= 2 ms", "measured": ", ".join(f"{r:g}/s: {d:+.2f}" for r, d in sorted(upto.items())),
                     "met": bool(upto) and all(d <= 2.0 for d in upto.values())
                     and all(s["rate"] in upto for s in eddy["steps"] if s["rate"] <= 1000),
                     "bound": _bound(idle_cores(eddy, over := sorted(r for r, d in upto.items() if d > 2.0)),
                                     rewrites_in(eddy, over))})
    if http is not None:
        both = [s for s in eddy["steps"] if not s["saturated"]
                and (h := _step(http, s["rate"])) is not None and not h["saturated"]]
        lower = [s["rate"] for s in both if s["latency_ms"]["p99"] < _step(http, s["rate"])["latency_ms"]["p99"]]
        rows.append({"target": "p99 lower than the HTTP baseline's at every rate both sustain",
                     "goal": "every rate", "measured": f"lower at {len(lower)} of {len(both)} rates "
                     + ", ".join(f"{s['rate']:g}/s: {s['latency_ms']['p99']:.1f} vs "
                                 f"{_step(http, s['rate'])['latency_ms']['p99']:.1f}" for s in both),
                     "met": bool(both) and len(lower) == len(both),
                     "bound": _floor_vs_http(alo, http, [s["rate"] for s in both]) or None})
    e_sat = saturation(eddy)["max_throughput"]
    for other, whose, goal, ratio_fmt, at_least in ((eos, "the transactional floor's", ">= 50%", "{:.0%}", 0.5),
                                                    (http, "the HTTP baseline's", ">= 5x", "{:.1f}x", 5)):
        if other is None:
            continue
        o_sat = saturation(other)["max_throughput"]
        ratio = e_sat / o_sat if e_sat and o_sat else None
        bound = None
        if q_best and o_sat:
            bound = (f"the engine alone: {q_best[1]:,} queries per CPU-second (median batch of {q_best[0]}), "
                     f"{ratio_fmt.format(q_best[1] / o_sat)}")
        rows.append({"target": f"most answers/s against {whose}", "goal": goal,
                     "measured": f"{e_sat:,.0f} vs {o_sat:,.0f} ({ratio_fmt.format(ratio)})" if ratio else "n/a",
                     "met": ratio is not None and ratio >= at_least, "bound": bound})
    fb = eddy.get("feedback_throughput", {}).get("updates_per_s")
    rows.append({"target": "feedback updates/s, one worker", "goal": ">= 20,000",
                 "measured": f"{fb:,.0f}" if fb else "n/a", "met": None if fb is None else fb >= 20_000,
                 "bound": f"the engine alone: {ceiling['feedback_per_cpu_s_median_batch']:,} per CPU-second "
                          "(median batch)" if ceiling else None})
    ll = eddy.get("learning_latency_ms", {}).get("p99")
    rows.append({"target": "learning latency p99", "goal": "<= 20 ms",
                 "measured": f"{ll:.1f} ms" if ll is not None else "n/a", "met": None if ll is None else ll <= 20})
    return rows
