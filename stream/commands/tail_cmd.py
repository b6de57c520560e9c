"""eddy tail"""

from __future__ import annotations

import argparse
import json
import time

from stream import config
from stream.argtypes import positive_float, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topics", default="predictions,model-updates",
                   help="comma-separated Eddy topic names (default: predictions,model-updates)")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest record, not the newest")
    p.add_argument("--max", type=positive_int, default=None, help="stop after this many records")
    p.add_argument("--timeout", type=positive_float, default=None, help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="print raw JSON lines instead of a summary")
    config.add_arguments(p, only=("bootstrap", "topic_prefix"))


def summarize(topic: str, obj: dict, headers: dict[str, str]) -> str:
    schema = str(obj.get("schema", ""))
    if schema.startswith("eddy.prediction"):
        top = ", ".join(f"{r['item_id']}:{r['score']:+.3f}" for r in obj["ranked"][:3])
        v = obj["versions"]
        return (f"prediction {obj['request_id']} user={obj['user_id']} chosen={obj['chosen']} [{top}] "
                f"fn={v['feature_net']} w={v['user_weights']} {obj['latency_ms']:.2f}ms")
    if schema.startswith("eddy.model_update"):
        s = obj.get("summary", {})
        if obj.get("kind") == "feature_net":
            return f"model-update feature net -> {obj['version']} (replaced {s.get('replaced') or 'none'})"
        return (f"model-update user={obj['user_id']} fn={obj['feature_net_version']} v{obj['version']} "
                f"|dw|={s.get('delta_norm', 0):.4f} err={s.get('error', 0):+.3f}")
    if schema.startswith("eddy.decision"):
        return (f"decision {obj['request_id']} user={obj['user_id']} chose "
                f"{obj['candidates'][obj['chosen_index']]['id']} p={obj['propensity']:.3f} {obj['policy_version']}")
    if schema.startswith("eddy.outcome"):
        d = obj["decision"]
        return f"outcome {d['request_id']} user={d['user_id']} item={obj['item_id']} reward={obj['reward']}"
    return f"{topic}: {json.dumps(obj)[:200]}"


def run(args: argparse.Namespace) -> int:
    from stream.client import reader
    from stream.kafka_io import headers_dict, wait_for_broker

    s = config.from_args(args)
    topics = [s.topic(t.strip()) for t in args.topics.split(",") if t.strip()]
    unknown = [t for t in topics if t[len(s.topic_prefix):] not in config.TOPIC_NAMES]
    if unknown:
        raise config.ConfigError(f"--topics: unknown topic(s) {unknown}; known: {', '.join(config.TOPIC_NAMES)}")
    wait_for_broker(s)
    consumer = reader(s, topics, from_beginning=args.from_beginning)
    seen = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        while (args.max is None or seen < args.max) and (deadline is None or time.monotonic() < deadline):
            for m in consumer.consume(100, 0.2):
                if m.error():
                    continue
                seen += 1
                hdrs = headers_dict(m)
                if args.json:
                    print((m.value() or b"").decode(errors="replace"), flush=True)
                elif m.topic() == s.topic("dead-letter"):
                    print(f"dead-letter {hdrs.get('eddy.reason')} from {hdrs.get('eddy.source.topic')}"
                          f"[{hdrs.get('eddy.source.partition')}]@{hdrs.get('eddy.source.offset')}: "
                          f"{hdrs.get('eddy.error')}", flush=True)
                else:
                    try:
                        print(summarize(m.topic(), json.loads(m.value()), hdrs), flush=True)
                    except (ValueError, KeyError, TypeError):
                        print(f"{m.topic()}: {m.value()[:200]!r}", flush=True)
                if args.max is not None and seen >= args.max:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0
