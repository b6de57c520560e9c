"""Run the benchmarks of a :class:`~benchmarks.plan.Plan`: every system, then users, OPE and the engine alone.

Each system runs in its own process on its own topics (see
:mod:`benchmarks.systems`); the load generator runs here. For each system:
warm up until it answers, ramp the open-loop rate until it saturates, then
(Eddy, exactly_once) one more step under cProfile, (systems that learn)
feedback throughput and learning latency, and (Eddy, exactly_once) reading
its decision log back for replay.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import cpu_watch, engine_ceiling, learning, ope, profiling, users
from benchmarks import model as bench_model
from benchmarks.batch_watch import BatchWatch
from benchmarks.env import broker_process, describe, redis_pid
from benchmarks.httpload import HttpLoad
from benchmarks.loadgen import KafkaLoad, QueryPool
from benchmarks.plan import Plan
from benchmarks.redis_watch import RedisWatch
from benchmarks.stats import fmt_ms
from benchmarks.systems import BY_NAME, BenchError, Deployment, Process, System, check_stack
from stream.config import Settings, redacted
from stream.processes import instance_ids
from stream.store import RedisStore


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def wait_quiet(max_load: float | None, max_wait_s: float = 180.0) -> list[float]:
    """Wait (bounded) until the 1-minute load average is below ``max_load``; returns the load averages then."""
    if max_load is not None:
        end = time.monotonic() + max_wait_s
        told = False
        while os.getloadavg()[0] > max_load and time.monotonic() < end:
            if not told:
                say(f"  waiting up to {max_wait_s:.0f} s for the load average ({os.getloadavg()[0]:.2f}) "
                    f"to fall below {max_load:g}")
                told = True
            time.sleep(2)
    return [round(x, 2) for x in os.getloadavg()]


def step_line(step: dict) -> str:
    lat = step["latency_ms"]
    return (f"{step['rate']:>7g}/s x {step['duration_s']:.1f}s: p50 {fmt_ms(lat['p50'])}  p99 {fmt_ms(lat['p99'])}  "
            f"p99.9 {fmt_ms(lat['p99.9'])} ms  answered {lat['answered']}/{step['sent']} ({step['throughput']:.0f}/s)"
            + (f"  SATURATED: {step['saturation_reason']}" if step["saturated"] else ""))


class Run:
    def __init__(self, plan: Plan, base: Settings):
        self.plan = plan
        self.base = base
        self.work = Path(tempfile.mkdtemp(prefix="eddy-bench-"))
        self.prefix = plan.topic_prefix or f"bench{time.strftime('%Y%m%d%H%M%S')}-"
        self.model = None
        self.pool = None
        self.results: dict = {}
        self.tenants: dict[str, int | None] = {"generator": os.getpid()}  # + broker and Redis, found by run()

    # ----------------------------------------------------------------- setup
    def deploy(self, name: str, processing: str = "exactly_once") -> Deployment:
        return Deployment(self.base, f"{self.prefix}{name}.", self.model, self.work / "models",
                          processing=processing, partitions=4)

    def generator(self, system: System, dep: Deployment, proc: Process):
        p = self.plan
        if system.transport == "http":
            gen = HttpLoad(proc.port, self.pool, connections=p.http_connections, feedback_ratio=p.feedback_ratio,
                           seed=p.seed, saturate_ms=p.saturate_ms)
            try:
                gen.run(gen.ready(90))
            except OSError:
                proc.check()
                raise BenchError(f"{system.name} did not accept HTTP connections on port {proc.port} within 90 s; "
                                 f"its log:\n{proc.log_tail()}") from None
            gen.run_step(p.warmup_rate, 1.0, drain_s=10, tag="warm-")
            return gen
        gen = KafkaLoad(dep.settings, self.pool, feedback_ratio=p.feedback_ratio, seed=p.seed,
                        saturate_ms=p.saturate_ms)
        deadline = time.monotonic() + 120
        k = 0
        while True:  # the consumer group must form and the worker load its model before it answers
            proc.check()
            step = gen.run_step(20, 0.5, drain_s=5, tag=f"warm{k}-")
            k += 1
            if step["latency_ms"]["answered"] == step["sent"]:
                break
            if time.monotonic() > deadline:
                raise BenchError(f"{system.name} answered no query within 120 s; its log:\n{proc.log_tail()}")
        if system.workers > 1:  # every member must hold its partitions, or a late join rebalances mid-step
            _wait_for_members(dep.settings, system.workers, proc)
        gen.run_step(p.warmup_rate, 1.0, drain_s=10, tag="warmup-")
        gen.settle()
        return gen

    # --------------------------------------------------------------- systems
    def launch(self, system: System) -> tuple[Deployment, Process]:
        dep = self.deploy(system.name, system.processing if system.processing != "n/a" else "exactly_once")
        profiled = system.name == "eddy-eos" and self.plan.runs("profile")
        try:
            proc = Process(system, dep.settings, self.work, profile=self.work / "eddy.prof" if profiled else None)
        except BaseException:
            dep.cleanup()
            raise
        return dep, proc

    def system(self, system: System, launched: tuple[Deployment, Process] | None = None) -> dict:
        p = self.plan
        dep, proc = launched or self.launch(system)
        profiled = system.name == "eddy-eos" and p.runs("profile")
        gen = None
        res: dict = {"title": system.title, "description": system.description, "transport": system.transport,
                     "kind": system.kind, "processing": system.processing,
                     "config": system_config(system, dep.settings, p), "steps": []}
        watch = RedisWatch(dep.redis, appendfsync=system.redis_appendfsync)
        batches = (BatchWatch(dep.store, dep.settings.group, [dep.settings.instance_id] if system.workers == 1
                              else instance_ids(dep.settings.instance_id, system.workers))
                   if system.kind == "eddy" else None)
        try:
            watch.start()
            if batches is not None:
                batches.start()
            t0 = time.monotonic()
            gen = self.generator(system, dep, proc)
            res["ready_seconds"] = round(time.monotonic() - t0, 1)
            res["loadavg_before"] = wait_quiet(p.quiet_load)
            pids = {"system": proc.proc.pid, **self.tenants}
            for k, rate in enumerate(p.rates):
                proc.check()
                duration = max(p.step_s, p.min_samples / rate)
                t_step = time.time()
                cpu = cpu_watch.snapshot(pids)
                step = gen.run_step(rate, duration, drain_s=p.drain_s, tag=f"s{k}-")
                step["cpu_cores"] = cpu_watch.cores_used(cpu, cpu_watch.snapshot(pids))
                step["window"] = [round(t_step, 3), round(time.time(), 3)]  # unix s: Redis's stalls by step
                say(f"  {step_line(step)}")
                res["steps"].append(step)
                if step["saturated"]:
                    break
                if isinstance(gen, KafkaLoad):
                    gen.settle(idle_s=0.3)
            if isinstance(gen, KafkaLoad):
                gen.settle(idle_s=1.0, max_s=120)
            if profiled:
                self.results["profile"] = []
                for rate in sorted({min(p.rates), profile_rate(res, p)}):
                    self.results["profile"].append(self.profile(proc, gen, rate))
                    gen.settle(idle_s=1.0, max_s=120)
            if system.learns and p.runs("learning"):
                self.learning(system, gen, res, pid=proc.proc.pid if system.workers == 1 else None)
            if system.name == "eddy-eos" and p.runs("ope"):
                say("  replay input: reading the decision log back from Kafka")
                self.results.setdefault("ope", {})["kafka_log"] = ope.kafka_log(dep.settings)
                self.results["ope"]["replay"] = ope.kafka_replay(dep.settings, n_bootstrap=p.ope_bootstrap)
            res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            return res
        finally:
            watch.stop()
            if batches is not None:
                batches.stop()
                res["batch_timeline"] = batches.timeline()
                if batches.error:
                    res["batch_watch_error"] = batches.error
                for step in res["steps"]:
                    step["batch"] = batches.step(*step["window"])
            res["redis"] = watch.report()
            if "error" not in res["redis"]:
                for step in res["steps"]:
                    step["redis_stalls_ms"] = watch.stalls(*step["window"])
                    step["redis_aof_rewrites"] = watch.rewrites(*step["window"])
            if gen is not None:
                gen.close()
            proc.stop()
            res["process_output"] = proc.log_tail(3)
            dep.cleanup()

    def learning(self, system: System, gen, res: dict, *, pid: int | None) -> None:
        """``pid``: the system's one worker process, whose CPU per update is measured (None: several)."""
        p = self.plan
        say(f"  feedback throughput: {p.feedback_n} feedback events at once")
        if isinstance(gen, KafkaLoad):
            res["feedback_throughput"] = learning.kafka_feedback_throughput(gen, p.feedback_n, tag="fb-", pid=pid)
            res["applied_markers"] = learning.applied_marker_bytes(gen.s)
            gen.settle(idle_s=0.5)
            res["learning_latency_ms"] = learning.kafka_learning_latency(gen, p.learning_samples, tag="ll-")
        else:
            res["feedback_throughput"] = learning.http_feedback_throughput(gen, p.feedback_n, tag="fb-", pid=pid)
            res["learning_latency_ms"] = learning.http_learning_latency(gen, p.learning_samples, tag="ll-")
        fb, ll = res["feedback_throughput"], res["learning_latency_ms"]
        say(f"  feedback: {fb['updates']} updates at {fb['updates_per_s']}/s; learning latency "
            f"p50 {ll.get('p50')} ms p99 {ll.get('p99')} ms ({ll['observed']}/{ll['samples']} observed)")

    # ----------------------------------------------------------------- phases
    def profile(self, proc: Process, gen: KafkaLoad, rate: float) -> dict:
        """One more step at ``rate`` with cProfile switched on in the worker (SIGUSR1 on, SIGUSR2 off + dump)."""
        p = self.plan
        path = self.work / "eddy.prof"
        done = Path(str(path) + ".json")
        done.unlink(missing_ok=True)
        say(f"  profile: one {rate:g}/s step under cProfile")
        os.kill(proc.proc.pid, signal.SIGUSR1)
        step = gen.run_step(rate, p.profile_step_s, drain_s=p.drain_s, tag="prof-")
        os.kill(proc.proc.pid, signal.SIGUSR2)
        say(f"  {step_line(step)}")
        end = time.monotonic() + 30
        while not done.exists() and time.monotonic() < end:
            proc.check()
            time.sleep(0.1)
        if not done.exists():
            raise BenchError(f"the profiled worker wrote no stats to {path} within 30 s; its log:\n{proc.log_tail()}")
        out = profiling.summarize(path, wall_s=json.loads(done.read_text())["wall_s"])
        out.update(system="eddy-eos", rate=rate, duration_s=p.profile_step_s, sent=step["sent"],
                   answered=step["latency_ms"]["answered"],
                   latency_ms={k: step["latency_ms"][k] for k in ("p50", "p99")})
        return out

    def users_cost(self, n: int, states: list[bytes]) -> dict:
        p = self.plan
        system = BY_NAME["eddy-eos"]
        dep = self.deploy(f"users{n}")
        store = RedisStore.from_settings(dep.settings)
        proc = gen = None
        try:
            last = [0.0]

            def progress(done: int, total: int) -> None:
                if time.monotonic() - last[0] > 2:
                    last[0] = time.monotonic()
                    say(f"    wrote {done:,}/{total:,} user states")

            out = users.measure_memory(dep.redis, store, self.model.version, n, states, dep.settings.partitions,
                                       progress)
            users.drop_partition_sets(store, self.model.version, dep.settings.partitions)
            out["aof_rewrite_s"] = users.settle_persistence(dep.redis)
            say("    the AOF not rewritten: Redis refuses BGREWRITEAOF" if out["aof_rewrite_s"] is None else
                f"    rewrote the AOF with the {n:,} users in {out['aof_rewrite_s']:g} s (before the step: see benchmarks.users)")
            proc = Process(system, dep.settings, self.work)
            gen = self.generator(system, dep, proc)
            out["loadavg_before"] = wait_quiet(p.quiet_load)
            count = max(1, int(p.users_rate * p.users_step_s))
            step = gen.run_step(p.users_rate, p.users_step_s, drain_s=p.drain_s, tag="users-",
                                users=users.user_ids(n, count, p.seed))
            out["worker_rss_mb"] = users.rss_mb(proc.proc.pid)  # after serving the step: its users are cached
            say(f"  {n:,} users: {out['bytes_per_user_info']:.0f} B/user (INFO delta), "
                f"{out['bytes_per_user_memory_usage']:.0f} B/user (MEMORY USAGE); {step_line(step)}")
            out.update(rate=p.users_rate, step=step)
            return out
        finally:
            if gen is not None:
                gen.close()
            if proc is not None:
                proc.stop()
            say(f"    deleting the {n:,} users' keys")
            dep.cleanup()

    def warm_broker(self) -> list[dict]:
        """Load through the transactional echo worker before the first system, recording nothing of it.

        A freshly started broker's JVM interprets its hot paths until it has compiled them, so
        whichever system ran first would pay for it (on a fresh stack the first system's p99 was
        several times its own later runs'). Returns each warm-up step's rate, answered count and p99."""
        p = self.plan
        system = BY_NAME["floor-eos"]
        say(f"[warm-up] {p.broker_warmup_s:g} s of load through {system.title} first, not recorded "
            f"(rates {', '.join(f'{r:g}/s' for r in p.broker_warmup_rates)})")
        dep, proc = self.launch(system)
        out, gen = [], None
        try:
            gen = self.generator(system, dep, proc)
            for k, rate in enumerate(p.broker_warmup_rates):
                step = gen.run_step(rate, p.broker_warmup_s / len(p.broker_warmup_rates), drain_s=p.drain_s,
                                    tag=f"bw{k}-")
                out.append({"rate": rate, "sent": step["sent"], "answered": step["latency_ms"]["answered"],
                            "p99_ms": step["latency_ms"].get("p99")})
        finally:
            if gen is not None:
                gen.close()
            proc.stop()
            dep.cleanup()
        return out

    # -------------------------------------------------------------------- all
    def run(self) -> dict:
        p = self.plan
        check_stack(self.base)
        broker = broker_process(self.base)
        self.tenants.update(broker=broker[0] if broker else None, redis=redis_pid(self.base))
        started = time.time()
        t_start = time.monotonic()
        self.results.update(schema="eddy.bench/1", started_at=started, quick=p.quick, plan=p.to_dict(),
                            machine=describe(self.base), topic_prefix=self.prefix, systems={})
        say(f"eddy bench{' --quick' if p.quick else ''}: training the feature net every system serves "
            f"({p.train_examples} simulated examples)")
        self.model, self.results["model"] = bench_model.train(seed=p.seed, examples=p.train_examples,
                                                              epochs=p.train_epochs)
        self.pool = QueryPool(bench_model.world(p.seed), p.pool_size)
        seconds = self.results["phase_seconds"] = {"train": round(time.monotonic() - t_start, 1)}
        if p.broker_warmup_s > 0:
            t0 = time.monotonic()
            self.results["broker_warmup"] = self.warm_broker()
            seconds["broker_warmup"] = round(time.monotonic() - t0, 1)
        launched: dict[str, tuple[Deployment, Process]] = {}
        try:
            if p.prestart:  # quick mode: start every system at once (their start-up overlaps the first runs)
                for name in p.systems:
                    launched[name] = self.launch(BY_NAME[name])
            for i, name in enumerate(p.systems, 1):
                system = BY_NAME[name]
                say(f"[{i}/{len(p.systems)}] {system.title} ({name}): {system.description}")
                t0 = time.monotonic()
                try:
                    self.results["systems"][name] = self.system(system, launched.pop(name, None))
                except BenchError as exc:  # record it and go on: one broken system must not void the run
                    say(f"  FAILED: {exc}")
                    self.results["systems"][name] = {"title": system.title, "description": system.description,
                                                     "transport": system.transport, "error": str(exc),
                                                     "steps": [], "config": {}}
                seconds[name] = round(time.monotonic() - t0, 1)
        finally:
            for dep, proc in launched.values():
                proc.stop()
                dep.cleanup()
        if p.runs("users"):
            states = users.sample_states(self.model.output_dim, seed=p.seed)
            self.results["users"] = []
            for n in p.users:
                say(f"[users] {n:,} users: writing their states to Redis, then queries for random users")
                t0 = time.monotonic()
                self.results["users"].append(self.users_cost(n, states))
                seconds[f"users{n}"] = round(time.monotonic() - t0, 1)
        if p.runs("ope"):
            say(f"[ope] estimators on {p.ope_rounds:,} synthetic logged decisions")
            t0 = time.monotonic()
            self.results.setdefault("ope", {})["estimators"] = ope.estimators(p.ope_rounds,
                                                                              n_bootstrap=p.ope_bootstrap, seed=p.seed)
            seconds["ope"] = round(time.monotonic() - t0, 1)
        if p.runs("engine"):
            say(f"[engine] the pure engine alone (no Kafka, no Redis, one core): {p.engine_n:,} queries in "
                f"batches of {', '.join(map(str, engine_ceiling.QUERY_BATCHES))}, then as many feedback events")
            t0 = time.monotonic()
            self.results["engine_ceiling"] = engine_ceiling.measure(p.engine_n, seed=p.seed, model=self.model,
                                                                    pool=self.pool)
            seconds["engine"] = round(time.monotonic() - t0, 1)
        self.results["finished_at"] = time.time()
        self.results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        return self.results


def profile_rate(eddy: dict, plan: Plan) -> float:
    """The highest rate Eddy (exactly_once) sustained in the ramp, so the profile shows work, not idling."""
    ok = [s["rate"] for s in eddy["steps"] if not s["saturated"]]
    return max(ok) if ok else plan.rates[0]


def system_config(system: System, settings: Settings, plan: Plan) -> dict:
    strip = ("bootstrap.servers", "group.id", "transactional.id")
    gen = KafkaLoad.config(settings)
    if system.transport == "http":
        return {"server": {"uvicorn_workers": 1, "http": "h11", "loop": "asyncio", "access_log": False,
                           "timeout_keep_alive_s": 3600,
                           "redis_client": "synchronous redis-py, one GET per request + one SET per decision",
                           "torch_threads": settings.torch_threads, "policy": settings.policy,
                           "learner": settings.learner},
                "load_generator": {"transport": "HTTP/1.1 keep-alive (asyncio streams)",
                                   "connections": plan.http_connections}}
    eos = settings.processing == "exactly_once"
    cfg = {"processing": settings.processing,
           "consumer": {k: v for k, v in redacted(settings.consumer_config()).items() if k not in strip},
           "producer": {k: v for k, v in redacted(settings.producer_config(transactional=eos and system.kind != "naive")).items()
                        if k not in strip},
           "partitions": settings.partitions, "load_generator": gen}
    if system.kind == "naive":
        cfg["loop"] = "poll() one message; process; produce; flush(); commit(message, asynchronous=False)"
    else:
        cfg["loop"] = (f"stream.worker.Worker.run: batches of up to max_batch={settings.max_batch}, "
                       f"poll timeout {settings.poll_timeout_ms} ms; per batch "
                       + ("begin/produce/send_offsets_to_transaction/commit_transaction" if eos
                          else "produce; flush(); commit(offsets, asynchronous=False)")
                       + ("" if system.kind == "eddy" else "; no work, no Redis: queries echoed unchanged"))
    if system.kind in ("eddy", "naive"):
        cfg.update(policy=settings.policy, learner=settings.learner, torch_threads=settings.torch_threads)
    if system.kind == "eddy":
        cfg.update(cache_users=settings.cache_users, batch_slo_ms=settings.batch_slo_ms)
    return cfg


def _wait_for_members(settings, n: int, proc: Process, timeout_s: float = 120.0) -> None:
    """Until ``n`` worker processes of the group have each been assigned partitions, then 3 s of calm."""
    store = RedisStore.from_settings(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        proc.check()
        stats = store.read_stats(settings.group)
        assigned = {inst: st.get("rebalances", 0) for inst, st in stats.items()}
        if len([r for r in assigned.values() if r >= 1]) >= n:
            time.sleep(3.0)
            if {inst: st.get("rebalances", 0) for inst, st in store.read_stats(settings.group).items()} == assigned:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{proc.system.name}: {n} workers did not all hold partitions within {timeout_s:g}s")
        time.sleep(0.5)
