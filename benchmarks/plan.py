"""What a run measures and for how long: the full run and ``--quick`` (every benchmark briefly)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from benchmarks.systems import BY_NAME, SYSTEMS, BenchError

PHASES = ("learning", "profile", "users", "ope", "engine")


@dataclass(frozen=True)
class Plan:
    quick: bool = False
    rates: tuple[float, ...] = (25, 50, 100, 250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000)
    step_s: float = 5.0  # each load step lasts this long...
    min_samples: int = 600  # ...or long enough for this many queries
    drain_s: float = 5.0  # after the last send, how long answers are waited for
    saturate_ms: float = 1000.0  # a step whose p99 passes this is saturated (as is one with unanswered queries)
    slo_ms: float = 10.0
    more_slos_ms: tuple[float, ...] = (20.0, 50.0, 100.0)  # also reported: highest rate within each
    warmup_rate: float = 200.0  # one second at this rate after a system first answers (caches, allocators)
    broker_warmup_s: float = 20.0  # before the first system: this long through an echo worker, not recorded
    broker_warmup_rates: tuple[float, ...] = (500, 2000, 8000)  # (the JVM compiles its hot paths)
    feedback_ratio: float = 0.2
    systems: tuple[str, ...] = tuple(s.name for s in SYSTEMS)
    http_connections: int = 32
    feedback_n: int = 20000  # a few seconds at a worker's rate: 5,000 (about a second) moved 40% run to run
    learning_samples: int = 200  # its p99 is then about the second slowest: of 50 it was the slowest alone
    users: tuple[int, ...] = (1_000, 100_000, 1_000_000)
    users_rate: float = 200.0
    users_step_s: float = 15.0  # 3,000 queries: p99 is the 30th slowest (of 1,000, one 50 ms hiccup set it)
    ope_rounds: int = 100_000
    ope_bootstrap: int = 100
    profile_step_s: float = 5.0
    engine_n: int = 4000  # the engine alone (no Kafka, no Redis): queries per batch size, then as much feedback
    train_examples: int = 5000
    train_epochs: int = 2
    seed: int = 0
    skip: tuple[str, ...] = ()
    topic_prefix: str = ""
    pool_size: int = 4096
    quiet_load: float | None = None  # before each system: wait (<= 3 min) for the 1-min load average to drop below
    prestart: bool = False  # start every system's process up front (quick mode: start-up overlaps measuring)
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)

    def runs(self, phase: str) -> bool:
        return phase not in self.skip


# Quick mode leaves out eddy-eos-fsync: the same worker as eddy-eos under another Redis policy, it proves
# nothing more about the harness (tests/integration/test_bench_redis_watch.py covers the policy switch).
QUICK = dict(quick=True, prestart=True, broker_warmup_s=0.0, systems=tuple(s.name for s in SYSTEMS if s.redis_appendfsync is None), rates=(100, 300), warmup_rate=50.0, step_s=1.5, min_samples=0, drain_s=2.0, http_connections=8,
             feedback_n=300, learning_samples=5, users=(1_000, 10_000), users_rate=100.0, users_step_s=1.5,
             ope_rounds=10_000, ope_bootstrap=20, profile_step_s=1.5, engine_n=400, train_examples=3000, train_epochs=1)


def make_plan(*, quick: bool, **overrides) -> Plan:
    plan = Plan(**QUICK) if quick else Plan()
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    unknown = [s for s in plan.systems if s not in BY_NAME]
    if unknown:
        raise BenchError(f"--systems: unknown system {unknown[0]!r}; choose from {', '.join(BY_NAME)}")
    bad = [p for p in plan.skip if p not in PHASES]
    if bad:
        raise BenchError(f"--skip: unknown phase {bad[0]!r}; choose from {', '.join(PHASES)}")
    if not plan.rates or any(r <= 0 for r in plan.rates):
        raise BenchError(f"--rates must be positive numbers, got {plan.rates!r}")
    if not 0 <= plan.feedback_ratio <= 1:
        raise BenchError(f"--feedback-ratio must be in [0, 1], got {plan.feedback_ratio!r}")
    if plan.step_s <= 0:
        raise BenchError(f"--step-seconds must be > 0, got {plan.step_s!r}")
    return replace(plan, rates=tuple(sorted(plan.rates)))
