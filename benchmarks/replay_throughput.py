"""``eddy replay`` throughput from a DSJSON file and from Kafka, side by side, with the bootstrap's cost apart.

``python -m benchmarks.replay_throughput [--rounds N] [--no-kafka]`` makes N
synthetic joined decisions (:func:`stream.replay.synthetic.synthetic_rounds`:
30 users, 20 items, 10 candidates with features per decision), writes them
to a temporary DSJSON file and, unless ``--no-kafka``, produces them as
decisions and outcomes to fresh topics on the configured broker (deleted
afterwards). Then it times what ``eddy replay`` does, through the same
functions (:mod:`stream.replay.pipeline`'s steps):

* **read + join**: :func:`stream.replay.source.load_rounds` from the file, and
  from Kafka (consume both topics, decode in bulk, join by request id);
* **3 targets**: logging, greedy and uniform as (n, K) distributions;
* **5 estimators x 3 targets**: :func:`stream.replay.evaluate.evaluate` with
  ``n_bootstrap=0``: the hashed context, the reward model (``--reward-model``,
  default ridge, 2-fold cross-fitted), ips, snips, dm, dr and sndr for each
  target, their ESS and diagnostics (the hashed context and the reward model
  are also timed alone, as a breakdown);
* **bootstrap**: the same with 1000 samples, minus the run without;
* **floors**, what no reader of these bytes through Python objects can beat:
  msgspec skipping every key of the file (``decode_lines`` into an empty
  Struct), msgspec decoding the file into replay's lean Struct
  (:class:`~stream.replay.dsjson_schema.DSJsonRead`) and freeing it, and a bare
  Kafka consume of each topic (``consume(20000)`` until every record is in,
  nothing done per record), and msgspec decoding each record's value into
  replay's lean Structs (:mod:`stream.replay.records`) and freeing them.

Each stage is the best of ``--repeat`` runs, in CPU seconds of this process
(``time.process_time``: what one free core gives, so figures from a busy
machine stay comparable) and in wall seconds (which on a shared machine
include waiting for a core, and for Kafka the broker's own work). Writes
``benchmarks/results/replay-throughput-<timestamp>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"
ESTIMATORS = ("ips", "snips", "dm", "dr", "sndr")
TARGETS = ("logging", "greedy", "uniform")


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[dict[str, float], Any]:
    """``({"cpu_s", "wall_s"}, result)``: the fastest of ``repeat`` runs by each clock."""
    cpu = wall = float("inf")
    out = None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return {"cpu_s": cpu, "wall_s": wall}, out


def produce_log(settings, rounds) -> None:
    """The rounds as decision and outcome records on ``settings``' topics (keyed by user, as the worker writes)."""
    from confluent_kafka import Producer

    from stream.events import Outcome, encode
    from stream.kafka_io import ensure_topics

    ensure_topics(settings, ("decisions", "outcomes"))
    producer = Producer(settings.producer_config(**{"linger.ms": 20, "batch.size": 1_000_000}))
    decisions, outcomes = settings.topic("decisions"), settings.topic("outcomes")
    for r in rounds:
        d = r.decision
        key = d.user_id.encode()
        while True:
            try:
                producer.produce(decisions, encode(d), key=key)
                producer.produce(outcomes, encode(Outcome(d, d.chosen_item, r.reward, r.feedback_ts)), key=key)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the benchmark's records were not all delivered in 60 s")


def bare_consume(settings, topic: str, expected: int) -> int:
    """Every record of ``topic`` by ``consume`` calls alone (replay's fetch settings, nothing per record)."""
    from confluent_kafka import Consumer, TopicPartition

    from stream.logread import BULK_FETCH

    consumer = Consumer(settings.consumer_config(group=f"bench-bare-{uuid.uuid4().hex[:8]}",
                                                 **{"enable.partition.eof": False}, **BULK_FETCH))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        n, deadline = 0, time.monotonic() + 60
        while n < expected and time.monotonic() < deadline:
            n += len(consumer.consume(min(20_000, expected - n), 0.5))
        return n
    finally:
        consumer.close()


def file_floors(path: Path, repeat: int) -> dict[str, dict[str, float]]:
    """The cost of msgspec alone on the file's bytes: skipping every key, and decoding replay's lean view."""
    import gc

    import msgspec

    from stream.replay.dsjson_schema import DSJsonRead

    class Nothing(msgspec.Struct):
        pass

    buf = path.read_bytes()
    skip, lean = msgspec.json.Decoder(Nothing), msgspec.json.Decoder(DSJsonRead)

    def decode_and_free() -> None:
        gc.disable()  # as the reader does
        try:
            lean.decode_lines(buf)
        finally:
            gc.enable()

    out = {}
    out["msgspec skips every key of the file"], _ = best_of(repeat, lambda: skip.decode_lines(buf))
    out["msgspec decodes the file into DSJsonRead (and frees it)"], _ = best_of(repeat, decode_and_free)
    return out


def kafka_decode_floors(rounds, repeat: int) -> dict[str, dict[str, float]]:
    """msgspec alone on the records' values: each decision and outcome decoded into replay's lean view."""
    import gc

    import msgspec

    from stream.events import Outcome, encode
    from stream.replay.records import DecisionRead, OutcomeRead

    out = {}
    for name, kind, values in (
            ("decisions", DecisionRead, [encode(r.decision) for r in rounds]),
            ("outcomes", OutcomeRead, [encode(Outcome(r.decision, r.decision.chosen_item, r.reward, r.feedback_ts))
                                       for r in rounds])):
        decode = msgspec.json.Decoder(kind).decode

        def decode_and_free() -> None:
            gc.disable()
            try:
                list(map(decode, values))
            finally:
                gc.enable()

        out[f"msgspec decodes the {name}' values into {kind.__name__} (and frees them)"], _ = best_of(
            repeat, decode_and_free)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reward-model", default="ridge", choices=("constant", "per-action", "ridge", "logistic"))
    parser.add_argument("--no-kafka", action="store_true", help="time the DSJSON file only")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)

    from bandits.ope.reward_model import RewardModelSpec, estimated_rewards
    from stream import config
    from stream.replay.dataset import context_matrix
    from stream.replay.dsjson import write_dsjson
    from stream.replay.evaluate import evaluate, resolve_target
    from stream.replay.slicing import SliceRequest
    from stream.replay.source import load_rounds
    from stream.replay.synthetic import synthetic_rounds
    from stream.replay.targets import parse_target

    rounds, _ = synthetic_rounds(args.rounds, seed=0)
    spec = RewardModelSpec(kind=args.reward_model)
    base = dict(since=None, until=None, start_offsets=None, end_offsets=None, join="outcomes", missing_reward=None)
    read: dict[str, dict[str, float]] = {}
    settings = config.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.dsjson"
        write_dsjson(rounds, path)
        size = path.stat().st_size
        read["dsjson file"], loaded = best_of(
            args.repeat, lambda: load_rounds(settings, SliceRequest(source=str(path), **base), progress=False))
        floors = file_floors(path, args.repeat)
    log = loaded.log
    kafka_note = None
    if not args.no_kafka:
        import dataclasses

        from stream.kafka_io import delete_topics

        kafka = dataclasses.replace(settings, topic_prefix=f"bench-replay-{uuid.uuid4().hex[:8]}.")
        try:
            produce_log(kafka, rounds)
            read["kafka (decisions + outcomes)"], from_kafka = best_of(
                args.repeat, lambda: load_rounds(kafka, SliceRequest(source="kafka", **base), progress=False))
            if from_kafka.log.n_rounds != log.n_rounds:
                raise RuntimeError(f"Kafka gave {from_kafka.log.n_rounds} rounds, the file {log.n_rounds}")
            floors.update(kafka_decode_floors(rounds, args.repeat))
            for name in ("decisions", "outcomes"):
                floors[f"bare consume of the {name} topic"], got = best_of(
                    args.repeat, lambda: bare_consume(kafka, kafka.topic(name), len(rounds)))
                if got < len(rounds):
                    raise RuntimeError(f"the bare consume read {got} of {len(rounds)} {name}")
        except Exception as exc:  # noqa: BLE001 - the file's figures still stand; say why Kafka's are missing
            kafka_note = f"Kafka not measured: {exc}"
        finally:
            try:
                delete_topics(kafka, [kafka.topic("decisions"), kafka.topic("outcomes")])
            except Exception:  # noqa: BLE001
                pass
    stages: dict[str, dict[str, float]] = {}
    stages["3 targets"], targets = best_of(args.repeat, lambda: [resolve_target(parse_target(t), log) for t in TARGETS])

    def estimate(n_bootstrap: int) -> list:
        return evaluate(log, targets, estimators=ESTIMATORS, n_bootstrap=n_bootstrap, reward_model=spec)

    stages["5 estimators x 3 targets"], _ = best_of(args.repeat, lambda: estimate(0))
    breakdown: dict[str, dict[str, float]] = {}
    breakdown["hashed context"], x = best_of(args.repeat, lambda: context_matrix(log))
    breakdown[f"reward model ({args.reward_model}, cross-fitted)"], _ = best_of(
        args.repeat, lambda: estimated_rewards(log, x, spec))
    with_bootstrap, _ = best_of(1, lambda: estimate(1000))
    bootstrap = {k: max(0.0, with_bootstrap[k] - stages["5 estimators x 3 targets"][k]) for k in ("cpu_s", "wall_s")}
    n = log.n_rounds
    shared = {k: sum(s[k] for s in stages.values()) for k in ("cpu_s", "wall_s")}
    end_to_end = {source: {k: r[k] + shared[k] for k in ("cpu_s", "wall_s")} for source, r in read.items()}

    def rate(seconds: float) -> float:
        return n / seconds if seconds > 0 else float("inf")  # a difference of two timings can be 0

    def row(name: str, t: dict[str, float]) -> str:
        return (f"{name:<44} {t['cpu_s']:>8.3f} {rate(t['cpu_s']):>11,.0f} {t['wall_s']:>8.3f} "
                f"{rate(t['wall_s']):>11,.0f}")

    print(f"{n} decisions, {log.n_actions} candidates each, {size / n:,.0f} bytes of DSJSON per decision")
    print(f"{'stage':<44} {'cpu s':>8} {'dec/s cpu':>11} {'wall s':>8} {'dec/s wall':>11}")
    for source, t in read.items():
        print(row(f"read + join: {source}", t))
    for name, t in stages.items():
        print(row(name, t))
    for name, t in breakdown.items():
        print(row(f"  of which {name}", t))
    for source, t in end_to_end.items():
        print(row(f"end to end, no bootstrap: {source}", t))
    print(row("bootstrap, 1000 samples, 15 estimates", bootstrap))
    for name, t in floors.items():
        print(row(f"floor: {name}", t))
    for source, t in end_to_end.items():
        per_s = rate(t["cpu_s"])
        print(f"target 100,000 decisions/s (CPU), {source}: {'reached' if per_s >= 100_000 else 'NOT reached'} "
              f"({per_s:,.0f}/s)")
    if kafka_note:
        print(kafka_note)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    out = Path(args.output) if args.output else RESULTS / f"replay-throughput-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": " ".join(["python -m benchmarks.replay_throughput", *(sys.argv[1:] if argv is None else argv)]),
        "rounds": n, "n_actions": log.n_actions, "dsjson_bytes": size, "repeat": args.repeat,
        "reward_model": args.reward_model, "estimators": list(ESTIMATORS), "targets": list(TARGETS),
        "read_s": read, "stages_s": stages, "breakdown_s": breakdown, "end_to_end_s": end_to_end,
        "end_to_end_decisions_per_s": {source: {"cpu": n / t["cpu_s"], "wall": n / t["wall_s"]}
                                       for source, t in end_to_end.items()},
        "bootstrap_1000_s": bootstrap, "floors_s": floors, "kafka_note": kafka_note,
        "clock_note": "cpu: this process's CPU time (one free core); wall: elapsed on a shared machine",
        "python": platform.python_version(), "cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
    }, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
