"""BENCHMARKS.md, generated from one result file (and its plots). Nothing in it is written by hand."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from benchmarks import redis_watch
from benchmarks.stats import fmt_ms


def _rel(path: Path, md_path: Path) -> str:
    return os.path.relpath(path, md_path.parent)


def _n(x, fmt: str = "{:,.0f}", none: str = "n/a") -> str:
    return none if x is None else fmt.format(x)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def _headline(r: dict) -> list[str]:
    s = r["summary"]
    slos = list(next(iter(s["systems"].values()))["max_rate_p99_within"]) if s["systems"] else []
    rows = []
    for name, sys_ in r["systems"].items():
        e = s["systems"][name]
        fb = e.get("feedback_throughput", {})
        ll = e.get("learning_latency_ms", {})
        rows.append([sys_["title"], *(_n(e["max_rate_p99_within"][k], "{:,g}/s", "-") for k in slos),
                     _n(e["saturated_at"], "{:,g}/s", "not reached"), _n(e["max_throughput"], "{:,.0f}/s"),
                     _n(fb.get("updates_per_s"), "{:,.0f}/s", "-"),
                     f"{_n(ll.get('p50'), '{:.1f}', '-')} / {_n(ll.get('p99'), '{:.1f}', '-')}"])
    out = ["Highest offered rate whose p99 stayed within each bound with every query answered (`-`: not even "
           f"the lowest rate tried, {min(r['plan']['rates']):g}/s), the rate at which the system saturated, the most "
           "answers per second it gave, feedback updates per second (one worker) and learning latency.", ""]
    out += _table(["system", *(f"p99 <= {k} ms" for k in slos), "saturated at", "max answered/s",
                   "feedback updates/s", "learning latency p50 / p99 (ms)"], rows)
    for name in ("eddy-eos", "eddy-alo"):
        e = s["systems"].get(name)
        if not e:
            continue
        title = r["systems"][name]["title"]
        if "vs_http_max_rate_ratio_by_slo" in e:
            parts = [f"p99 <= {k} ms: {_n(e['max_rate_p99_within'][k], '{:,g}/s', 'none')} vs "
                     f"{_n(s['systems']['http']['max_rate_p99_within'][k], '{:,g}/s', 'none')}"
                     + (f" (**{v:g}x**)" if v else "") for k, v in e["vs_http_max_rate_ratio_by_slo"].items()]
            out.append(f"- {title} against the HTTP baseline: {'; '.join(parts)}; most answers per second "
                       f"{_n(e['max_throughput'], '{:,.0f}')} vs {_n(s['systems']['http']['max_throughput'], '{:,.0f}')}"
                       + (f" (**{e['vs_http_max_throughput_ratio']:g}x**)." if e["vs_http_max_throughput_ratio"] else "."))
        pf = e.get("p50_minus_floor_ms")
        if pf and pf["median"] is not None:
            by = ", ".join(f"{k:g}/s: {v:+.2f}" for k, v in sorted(pf["by_rate"].items(), key=lambda kv: float(kv[0])))
            out.append(f"- {title}: p50 minus its Kafka floor's p50, median over the rates both sustained "
                       f"**{pf['median']:+.2f} ms** ({by}).")
    return out + [""]


def _machine(r: dict) -> list[str]:
    m = r["machine"]
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    return [
        f"- {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB memory, {m['os']}",
        f"- Apache Kafka {m['kafka']['version']} ({m['kafka']['source']}), one KRaft broker on localhost; "
        f"Redis {m['redis_server'].get('version')} on localhost",
        f"- Python {m['python']}; {pk}",
        f"- Load average at start {m['loadavg_at_start']}, at end {m.get('loadavg_at_end')}",
        f"- **Shared machine:** {m['shared_machine']}.",
        "",
    ]


def _warmup(r: dict) -> list[str]:
    steps = r.get("broker_warmup")
    if not steps:
        return ["- **Broker warm-up:** none in this run (the first system meets the broker as it is)."]
    done = "; ".join(f"{s['rate']:g}/s: {s['answered']:,} of {s['sent']:,} answered" for s in steps)
    return [f"- **Broker warm-up.** Before the first system, {r['plan'].get('broker_warmup_s', 0):g} s of load "
            f"through the transactional echo worker, not recorded ({done}): a freshly started broker's JVM "
            "would otherwise make whichever system runs first pay for compiling its hot paths."]


def _method(r: dict) -> list[str]:
    p = r["plan"]
    return [
        "- **Open loop.** Query *i* of a step is scheduled at `t0 + i/rate` and sent then, whatever happened to "
        "earlier queries. Latency runs from the *scheduled* send time to the moment the answer is consumed "
        "(Kafka: the prediction read back by the generator's `read_committed` consumer; HTTP: the end of the "
        "response), so queueing anywhere, the generator included, is counted (no coordinated omission). "
        "The generator's own lag (actual minus scheduled send) is in the tables, and so is the longest stall "
        "Redis's latency monitor recorded in the step's seconds (`command`, `aof-write`, `fork`...: every client "
        "of Redis waited that long; `-`: none of 10 ms or more), with the AOF rewrites that overlapped the step "
        "and how long each ran (Redis forks a child that rewrites its whole dataset, using most of a core while "
        "it runs: here, with the broker, the worker and the generator on two cores, the answers of those "
        "seconds wait; the latency monitor records only the fork).",
        f"- **Unanswered = infinitely slow.** A query not answered {p['drain_s']:g} s after the step's last send "
        "counts as infinite latency; a percentile past it reads `timeout`.",
        f"- **Steps.** Rates {', '.join(f'{x:g}' for x in p['rates'])}/s, each for max({p['step_s']:g} s, "
        f"{p['min_samples']} queries), stopping at the first saturated step (a query unanswered, p99 > "
        f"{p['saturate_ms']:g} ms, or answered/s < 90% of offered). Feedback for {p['feedback_ratio']:.0%} of "
        "the answers is sent as they arrive (chosen item, Bernoulli reward).",
        "- **Same model, same data.** One feature net (trained at the start of the run on the simulator), the "
        "same simulated queries (10 candidates), users, learner and exploration policy for every system. Each "
        "system runs in its own OS process, on its own topics (4 partitions), consumer group and Redis keys; the "
        "generator runs in the benchmark's process.",
        *_warmup(r),
        f"- **Where the cores go.** A column of each step: the cores (CPU-seconds per second, of "
        f"{r['machine'].get('nproc', '?')}) used by the system under test (its processes), the load generator "
        "(this benchmark's process), the Kafka broker and Redis, read from `/proc` at the step's start and end; "
        "`other` is the machine's busy time none of them had (the kernel's loopback network, the OS), `idle` what "
        "was left, and `steal` (shown when any) time the hypervisor gave another guest "
        "(`benchmarks/cpu_watch.py`). Near-zero idle: the step ran on a saturated machine. The figures of a step "
        "should add up to the machine's cores; where they are off by more than 10% the row says so. The cause "
        "seen here: a tickless kernel (`CONFIG_NO_HZ_IDLE`, `CONFIG_TICK_CPU_ACCOUNTING`) measures idle time "
        "exactly but samples busy time at its ticks, so when the cores wake for short bursts a few hundred "
        "times a second (here, steps of a few hundred queries a second) busy time is overcounted, by up to 0.6 "
        "of a core.",
        "- **Kafka floors.** `floor-eos` / `floor-alo` are the worker itself (`benchmarks.processors.echo_worker`: the worker's shell around an echo engine, "
        "same client settings, poll loop, batching and publish path) with the work taken out: queries are echoed "
        "to the predictions topic. Eddy's p50 minus its floor's p50 is the cost of Eddy's own work.",
        f"- **Learning.** Feedback throughput: {p['feedback_n']:,} decisions, then that many feedback events "
        "at once; model-update events counted as consumed. Learning latency: a new user's query, feedback for "
        "its chosen item at t0, then queries for that user, one in flight at a time, until a prediction's "
        f"`versions.user_weights` increments; latency = that prediction consumed - t0 ({p['learning_samples']} "
        "users, otherwise idle system).",
        "",
    ]


def _batch(step: dict) -> list[str]:
    """The step's mean batch and the AIMD limit's range (:mod:`benchmarks.batch_watch`)."""
    b = step.get("batch") or {}
    lo, hi = b.get("limit_min"), b.get("limit_max")
    return [_n(b.get("mean_batch"), "{:,.1f}"), "n/a" if lo is None else (f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}")]


CORES_HEAD = "cores: system / gen. / broker / Redis / other / idle"


def _cores(step: dict, nproc: int | None = None) -> list[str]:
    """Where the machine's cores went in the step (:mod:`benchmarks.cpu_watch`), steal added when there was any,
    and a warning when the figures do not add up to the machine's ``nproc`` cores (within 10%): the kernel's
    accounting overcounted over that step (:mod:`benchmarks.cpu_watch`), so its shares are doubtful.

    >>> _cores({"cpu_cores": {"system": 0.62, "generator": 0.4, "broker": 0.3, "redis": 0.05, "other": 0.1,
    ...                       "idle": 0.5, "steal": 0.03}}, nproc=2)
    ['0.62 / 0.40 / 0.30 / 0.05 / 0.10 / 0.50 (steal 0.03)']
    >>> _cores({"cpu_cores": {"system": 0.3, "generator": 0.1, "broker": 0.2, "redis": 0.04, "other": 0.45,
    ...                       "idle": 1.37, "steal": 0.0}}, nproc=2)
    ['0.30 / 0.10 / 0.20 / 0.04 / 0.45 / 1.37 (sums to 2.46 of 2: doubtful)']
    """
    c = step.get("cpu_cores") or {}
    text = " / ".join(_n(c.get(k), "{:.2f}") for k in ("system", "generator", "broker", "redis", "other", "idle"))
    steal = c.get("steal") or 0.0
    text += f" (steal {steal:.2f})" if steal >= 0.01 else ""
    total = sum(v for v in c.values() if v is not None)
    if nproc and c.get("idle") is not None and abs(total - nproc) > 0.1 * nproc:
        text += f" (sums to {total:.2f} of {nproc}: doubtful)"
    return [text]


def _steps(name: str, sys_: dict, nproc: int | None = None) -> list[str]:
    rows = []
    batched = any("batch" in s for s in sys_["steps"])
    cores = any("cpu_cores" in s for s in sys_["steps"])
    for s in sys_["steps"]:
        lat = s["latency_ms"]
        rows.append([f"{s['rate']:,g}", f"{s['duration_s']:.1f}", f"{s['sent']:,}", f"{lat['answered']:,}",
                     f"{s['throughput']:,.0f}", fmt_ms(lat["p50"]), fmt_ms(lat["p95"]), fmt_ms(lat["p99"]),
                     fmt_ms(lat["p99.9"]), fmt_ms(s["send_lag_ms"]["p99"]),
                     redis_watch.step_stalls(s.get("redis_stalls_ms"), s.get("redis_aof_rewrites")), f"{s['feedback_sent']:,}"]
                    + (_batch(s) if batched else []) + (_cores(s, nproc) if cores else []) + [s["saturation_reason"] or ""])
    head = [f"### {sys_['title']} (`{name}`)", "", sys_["description"] + ".", ""]
    if sys_.get("redis"):
        head += [redis_watch.describe(sys_["redis"]), ""]
    if sys_.get("batch_watch_error"):
        head += [f"The batch sizes stopped being read part way ({sys_['batch_watch_error']}): later steps show fewer.", ""]
    if sys_.get("error"):
        return head + [f"**Failed:** {sys_['error']}", ""]
    return head + _table(
        ["offered/s", "s", "sent", "answered", "answered/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms",
         "gen. lag p99 ms", "Redis stall ms", "feedback"]
        + (["mean batch", "AIMD limit"] if batched else []) + ([CORES_HEAD] if cores else []) + ["saturation"], rows)


def _users(r: dict) -> list[str]:
    rows = []
    for u in r["users"]:
        lat = u["step"]["latency_ms"]
        rows.append([f"{u['users']:,}", f"{u['state_bytes']}", f"{u['bytes_per_user_info']:,.0f}",
                     f"{u['bytes_per_user_memory_usage']:,.0f}", f"{u['writes_per_s']:,.0f}", f"{u['rate']:g}",
                     fmt_ms(lat["p50"]), fmt_ms(lat["p99"]), f"{lat['answered']:,}/{u['step']['sent']:,}",
                     "-" if u.get("worker_rss_mb") is None else f"{u['worker_rss_mb']:,.0f}",
                     "-" if u.get("aof_rewrite_s") is None else f"{u['aof_rewrite_s']:g}"])
    return ["Per-user state written with the worker's key layout (`user:<fn>:<user>` + the partition's user set), "
            "real learner bytes (river model after 5 observations). Memory per user from `INFO memory` "
            "(`used_memory` delta / users; other clients of a shared Redis add noise at small N) and from "
            "`MEMORY USAGE` of sampled keys plus the partition sets. Latency: a fresh Eddy worker "
            "(exactly_once, partition sets dropped so nothing is pre-warmed: every user's first query reads Redis) "
            "answering queries for users drawn uniformly from the population, open loop. Worker RSS: its resident "
            "memory after that step (the feature net, the libraries and the users it served; its user cache holds "
            "at most `cache_users`). Before the step the AOF is rewritten with the new users and the rewrite "
            "waited for (seconds in the last column; `-`: a run from before this was done): otherwise the "
            "automatic rewrites the bulk write sets off fork Redis at moments of its choosing, possibly during "
            "the step, which would then time the fork instead of the population's cost.", ""] + _table(
        ["users", "state bytes", "Redis B/user (INFO)", "Redis B/user (MEMORY USAGE)", "writes/s", "rate/s",
         "p50 ms", "p99 ms", "answered", "worker RSS MiB", "AOF rewrite s"], rows)


def _ope(r: dict) -> list[str]:
    o = r["ope"]
    out = []
    if "estimators" in o:
        e = o["estimators"]
        rows = [[n, f"{v['estimate']:.4f}", f"{v['abs_error']:.4f}", f"{v['decisions_per_s']:,}",
                 f"{v['bootstrap_decisions_per_s']:,}"] for n, v in e["estimators"].items()]
        out += [f"`bandits.ope` on {e['n_rounds']:,} synthetic logged decisions ({e['n_actions']} actions; target: "
                f"epsilon-greedy on a noisy reward model; true value {e['true_value']:.4f}).", ""]
        out += _table(["estimator", "estimate", "abs. error", "decisions/s (point)",
                       f"decisions/s (bootstrap, {e['n_bootstrap_samples']} samples)"], rows)
    if "kafka_log" in o:
        k = o["kafka_log"]
        out.append(f"- Reading the decision log from Kafka (`stream.logread.read_slice` + `decode_decision`, "
                   f"{k['decisions']:,} decisions of ~{_n(k['mean_record_bytes'])} bytes written by Eddy in this "
                   f"run): **{_n(k['decisions_per_s'])} decisions/s**.")
    if "replay" in o:
        rp = o["replay"]
        if rp["status"] == "ok":
            out.append(f"- `stream.replay.pipeline.replay` end to end (read + join decisions and outcomes from "
                       f"Kafka, targets greedy and uniform, estimators {', '.join(rp['estimators'])}, "
                       f"{rp['bootstrap_samples']} bootstrap samples) on {rp['n_rounds']:,} decisions: "
                       f"**{_n(rp['decisions_per_s_end_to_end'])} decisions/s** end to end, "
                       f"{_n(rp['decisions_per_s_estimation'])}/s for the estimation alone (timings "
                       f"{rp['timing_s']}).")
        else:
            out.append(f"- `stream.replay` end to end: not measured ({rp['error']}).")
    return out + [""]


def _replay_throughput(md_path: Path, json_path: Path) -> list[str]:
    """The newest ``python -m benchmarks.replay_throughput`` result, stage by stage (its own figures)."""
    found = sorted(json_path.parent.glob("replay-throughput-*.json"))
    if not found:
        return []
    t = json.loads(found[-1].read_text())
    n = t["rounds"]

    def row(name: str, s: dict) -> list[str]:
        return [name, f"{s['cpu_s']:.3f}", _n(n / s["cpu_s"] if s["cpu_s"] > 0 else None), f"{s['wall_s']:.3f}",
                _n(n / s["wall_s"] if s["wall_s"] > 0 else None)]

    rows = [row(f"read + join: {k}", v) for k, v in t["read_s"].items()]
    rows += [row(k, v) for k, v in t["stages_s"].items()]
    rows += [row(f"**end to end, no bootstrap: {k}**", v) for k, v in t["end_to_end_s"].items()]
    rows.append(row("the 1000-sample bootstrap (15 estimates), on top", t["bootstrap_1000_s"]))
    rows += [row(f"floor: {k}", v) for k, v in t.get("floors_s", {}).items()]
    out = [f"`eddy replay` end to end, `{t['command'].strip()}` "
           f"([`{found[-1].name}`]({_rel(found[-1], md_path)}); {n:,} decisions with {t['n_actions']} candidates, "
           f"{t['dsjson_bytes'] / n:,.0f} bytes of DSJSON each; best of {t['repeat']}; CPU: the process's CPU "
           f"time, wall: elapsed on a machine at load average {t['load_average'][0]:.1f}; "
           f"target 100,000 decisions/s):", ""]
    out += _table(["stage", "CPU s", "decisions/s (CPU)", "wall s", "decisions/s (wall)"], rows)
    if t.get("kafka_note"):
        out += [t["kafka_note"], ""]
    return out


def _profile(r: dict) -> list[str]:
    profiles = r["profile"] if isinstance(r["profile"], list) else [r["profile"]]
    out = ["Eddy (exactly_once, as shipped) under cProfile for one open-loop step at the lowest rate of the ramp "
           "and one at the highest rate it sustained (profiling slows it: the second step may saturate). "
           "cProfile's clock is wall time: `consume()` includes waiting for messages to arrive. Stages nest "
           "inside `whole batch`, the worker's busy time.", ""]
    names = [s["stage"] for s in profiles[0]["stages"]]
    head = ["stage"] + [f"{p['rate']:g}/s: s (share)" for p in profiles]
    rows = []
    for i, name in enumerate(names):
        rows.append([name] + [f"{p['stages'][i]['cumtime_s']:.3f} ({100 * (p['stages'][i]['share_of_loop'] or 0):.1f}%)"
                              for p in profiles])
    rows.append(["(profiled wall time; answered; p50 / p99 under the profiler)"]
                + [f"{p['profiled_wall_s']:.1f} s; {p['answered']:,}/{p['sent']:,}; {fmt_ms(p['latency_ms']['p50'])} / "
                   f"{fmt_ms(p['latency_ms']['p99'])} ms" for p in profiles])
    out += _table(head, rows)
    for p in profiles:
        out += [f"Top functions by cumulative time at {p['rate']:g}/s:", "", "```"]
        out += [f"{t['cumtime_s']:9.3f}s {100 * (t['share_of_loop'] or 0):5.1f}%  {t['ncalls']:>8}  {t['function']}"
                for t in p["top_cumulative"][:20]]
        out += ["```", ""]
    return out


def _side_results(md_path: Path, json_path: Path) -> list[str]:
    """The newest result of each side benchmark kept next to this run's (codec, Redis durability, ...)."""
    rows = []
    for stem, what, command in (
            ("engine-ceiling-", "the engine alone (no Kafka, no Redis): queries per CPU-second by batch size and "
             "feedback per CPU-second, what bounds any shell around it on one core", "python -m benchmarks.engine_ceiling"),
            ("forward-pass-", "the feature net's forward pass on CPU by batch size: torch against numpy on the same "
             "parameters (what serving runs), one thread each", "python -m benchmarks.forward_pass"),
            ("commit-size-", "one batch's Redis commit by batch size, the join records as stored and without "
             "their predictions (what rebuilding the prediction on a re-read would save)",
             "python -m benchmarks.commit_size"),
            ("command-packer-", "one batch's Redis commit (queries, feedback) with redis-py's command packer and with "
             "the store's (hiredis in one call)", "python -m benchmarks.command_packer"),
            ("engine-redis-", "the engine over the real Redis, no Kafka, in batches of 4 queries + 2 feedback: "
             "the median batch's wall and CPU time and the Redis commands it sends (one MGET, one commit script)",
             "python -m benchmarks.engine_redis"),
            ("codec-", "decode/encode cost per event, before and after msgspec", "python -m benchmarks.codec"),
            ("redis-durability-", "one batch's Redis commit under appendfsync no, everysec and always",
             "python -m benchmarks.redis_durability"),
            ("replay-throughput-", "`eddy replay` from a DSJSON file and from Kafka, side by side, stage by stage "
             "(read + join, targets, 5 estimators x 3 targets, the bootstrap apart), CPU and wall seconds",
             "python -m benchmarks.replay_throughput"),
            ("redis-cluster-", "one batch's commit on a 3-master Redis Cluster vs one Redis",
             "python -m benchmarks.redis_cluster"),
            ("lsh-coarsening-", "feature-cache hit rate against RMSE loss by SimHash bits (LSH coarsening), "
             "MovieLens-100K", "python -m benchmarks.lsh_coarsening"),
            ("feature-cache-", "the text feature net's CPU cost per query, and a live worker's cache hit rate "
             "and p99 with and without the feature cache", "python -m benchmarks.feature_cache"),
            ("anytime-", "anytime predictions under overload: answers on time and RMSE against exact answers "
             "(a live worker, MovieLens, a wide MLP)", "python -m benchmarks.anytime"),
            ("gcpause-", "one full garbage collection of a worker's heap by users cached: Python's schedule, "
             "the start-up heap frozen (the default), periodic freezing", "python -m benchmarks.gcpause"),
            ("cascade-", "IDK cascade: escalated fraction, latency and RMSE against always-cheap and "
             "always-expensive (a live worker, MovieLens)", "python -m benchmarks.cascade")):
        found = sorted(json_path.parent.glob(f"{stem}*.json"))
        if found:
            link = f"[`{found[-1].name}`]({_rel(found[-1], md_path)})"
            png = found[-1].with_suffix(".png")
            if png.is_file():
                link += f", [plot]({_rel(png, md_path)})"
            rows.append([what, f"`{command}`", link])
    if not rows:
        return []
    return ["## Side benchmarks", ""] + _table(["what", "command", "newest result"], rows)


def _targets(r: dict) -> list[str]:
    from benchmarks.summary import targets

    rows = targets(r)
    if not rows:
        return []
    mark = {True: "**met**", False: "missed", None: "not measured"}
    out = ["### Responsiveness targets (issue 10), each against systems of this run", ""]
    out += _table(["target", "goal", "measured", "", "bound on this machine, same run"],
                  [[t["target"], t["goal"], t["measured"], mark[t["met"]], t.get("bound") or "-"] for t in rows])
    if any(t.get("bound") for t in rows):
        out += ["*Bound*: what no worker can beat here, measured in this run. The engine alone "
                "(`python -m benchmarks.engine_ceiling`'s loop: the pure engine on the same feature net and queries, "
                "in-memory state, no Kafka, no Redis) counts what it does per CPU-second; a worker is one Python "
                "process, so its engine gets at most one core, before its Kafka and Redis shell and with the broker, "
                "Redis and the load generator on the same cores. The at-least-once floor is the same shell doing no "
                "work at all. A target past its bound is out of one worker's reach on this machine, whatever the "
                "shell costs (section *The engine alone* below). For the latency targets, the machine's idle cores "
                "in each step missed: near zero, the machine itself was saturated there (whoever used the CPU, see each "
                "step's cores); well above zero, the tail came from elsewhere than a lack of CPU.", ""]
    return out


def _engine_ceiling(r: dict) -> list[str]:
    c = r["engine_ceiling"]
    q, qm = c["queries_per_cpu_s"], c["queries_per_cpu_s_median_batch"]
    out = [f"The pure engine (`stream.engine`) alone in the benchmark's process, after the systems: the run's feature "
           f"net and queries ({c['candidates']} candidates), learner `{c['learner']}`, policy `{c['policy']}`, "
           f"{c['torch_threads']} torch thread, in-memory state, each batch committed like the worker's; "
           f"{c['n']:,} queries per batch size, then {c['n']:,} feedback events in batches of 500 (each joins its "
           "decision, updates its user, writes its marker). Per CPU-second of this process; the median batch is "
           "what a neighbour's burst or a full garbage collection moves least.", ""]
    out += _table(["per CPU-second"] + [f"queries, batches of {b}" for b in q] + ["feedback"],
                  [["whole run"] + [_n(v) for v in q.values()] + [_n(c["feedback_per_cpu_s"])],
                   ["median batch"] + [_n(v) for v in qm.values()] + [_n(c["feedback_per_cpu_s_median_batch"])]])
    return out


def render(r: dict, plots: dict[str, Path], md_path: Path, json_path: Path) -> str:
    when = dt.datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M")
    took = (r.get("finished_at", r["started_at"]) - r["started_at"]) / 60
    out = ["# Eddy benchmarks", "",
           f"Generated by `python -m benchmarks{' --quick' if r['quick'] else ''}` (same as `eddy bench`) on {when} "
           f"in {took:.1f} min, from [`{_rel(json_path, md_path)}`]({_rel(json_path, md_path)}). Do not edit: "
           "re-run, or re-render with `python -m benchmarks --from-json FILE`.", ""]
    if r["quick"]:
        out += ["> **Quick mode:** every benchmark ran briefly to prove the harness works. These numbers are "
                "not measurements; run `python -m benchmarks` for those.", ""]
    out += ["## Headline", ""] + _headline(r) + _targets(r)
    if "p99_vs_load" in plots:
        out += [f"![p99 against offered load]({_rel(plots['p99_vs_load'], md_path)})", ""]
    if "cdf_all" in plots:
        out += [f"![all systems at one rate]({_rel(plots['cdf_all'], md_path)})", ""]
    if "cores" in plots:
        out += [f"![where the machine's cores went, by offered rate]({_rel(plots['cores'], md_path)})", ""]
    out += ["## Machine", ""] + _machine(r) + ["## Method", ""] + _method(r)
    out += ["## Latency and throughput by offered rate", ""]
    for name, sys_ in r["systems"].items():
        out += _steps(name, sys_, r["machine"].get("nproc"))
        if f"cdf_{name}" in plots:
            out += [f"![{name} latency CDFs]({_rel(plots[f'cdf_{name}'], md_path)})", ""]
        if f"batches_{name}" in plots:
            out += [f"![{name} batch size over the ramp]({_rel(plots[f'batches_{name}'], md_path)})", ""]
        if f"tail_timeline_{name}" in plots:
            out += ["When the tail came, in the steps whose p99 passed the objective: the median and the slowest "
                    "answer of each tenth of a second, with Redis's AOF rewrites shaded.", "",
                    f"![{name} latency over time in the slow steps]({_rel(plots[f'tail_timeline_{name}'], md_path)})",
                    ""]
    if any("feedback_throughput" in s for s in r["systems"].values()):
        rows = []
        for name, s in r["systems"].items():
            if "feedback_throughput" in s:
                fb, ll = s["feedback_throughput"], s["learning_latency_ms"]
                marker = s.get("applied_markers", {}).get("bytes_per_marker")
                rows.append([s["title"], f"{fb['updates']:,}/{fb['feedback_sent']:,}", _n(fb["updates_per_s"]),
                             _n(fb.get("worker_cpu_us_per_update"), "{:,.1f}"),
                             _n(ll.get("p50"), "{:.1f}"), _n(ll.get("p99"), "{:.1f}"), _n(ll.get("max"), "{:.1f}"),
                             f"{ll['observed']}/{ll['samples']}", _n(marker, "{:,.0f}")])
        out += ["## Learning: feedback throughput and learning latency", ""] + _table(
            ["system", "updates/feedback", "updates/s (one worker)", "worker CPU us per update", "learning p50 ms",
             "p99 ms", "max ms", "observed", "Redis bytes per applied feedback"], rows)
        out += ["Worker CPU per update: the CPU time the system's worker process used over the throughput step, "
                "per update (n/a with several worker processes): what one update costs, which the machine's other "
                "tenants move far less than the rate.", ""]
        out += ["Redis bytes per applied feedback: `MEMORY USAGE` of the applied-markers the throughput step left "
                "(the record it came from and its outputs, for a re-read to re-emit); each lives `applied_ttl_s` "
                "(a week by default), so learning holds about rate x ttl x these bytes of Redis.", ""]
    if r.get("users"):
        out += ["## Cost as users grow", ""] + _users(r)
    if r.get("ope"):
        out += ["## Replay / off-policy evaluation throughput", ""] + _ope(r) + _replay_throughput(md_path, json_path)
    if r.get("engine_ceiling"):
        out += ["## The engine alone", ""] + _engine_ceiling(r)
    if r.get("profile"):
        out += ["## Where the time goes (Eddy hot path)", ""] + _profile(r)
    out += _side_results(md_path, json_path)
    out += ["## Configuration of every system", "",
            f"Model: {json.dumps({k: v for k, v in r['model'].items() if k != 'config'})}; feature net "
            f"`{json.dumps(r['model']['config'])}`.", ""]
    for name, s in r["systems"].items():
        out += [f"**{s['title']}** (`{name}`)", "", "```json", json.dumps(s["config"], indent=1), "```", ""]
    out += ["Benchmark plan:", "", "```json", json.dumps(r["plan"], indent=1), "```", ""]
    return "\n".join(out)
