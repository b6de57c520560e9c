"""eddy produce --file EVENTS.jsonl | --simulate"""

from __future__ import annotations

import argparse
import json
import sys
import time

from stream import config
from stream.argtypes import existing_file, fraction, non_negative_int, positive_float, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--file", type=existing_file,
                     help="JSONL of Eddy events (queries and feedback, by their 'schema'), sent in file order")
    src.add_argument("--simulate", action="store_true",
                     help="closed loop: simulated users send queries, read Eddy's predictions, click and send feedback")
    p.add_argument("--count", type=positive_int, default=1000, help="queries to simulate (default 1000)")
    p.add_argument("--rate", type=positive_float, default=200.0, help="queries per second to simulate (default 200)")
    p.add_argument("--users", type=positive_int, default=100, help="simulated users (default 100)")
    p.add_argument("--items", type=positive_int, default=50, help="simulated items (default 50)")
    p.add_argument("--feedback-ratio", type=fraction, default=1.0,
                   help="share of predictions that get feedback, in [0, 1] (default 1)")
    p.add_argument("--sim-seed", type=non_negative_int, default=0, help="seed of the simulated world")
    config.add_arguments(p, only=("bootstrap", "topic_prefix", "partitions", "linger_ms"))


def run(args: argparse.Namespace) -> int:
    from stream.kafka_io import ensure_topics

    s = config.from_args(args)
    ensure_topics(s)
    if args.file:
        return _from_file(s, args.file)
    from stream.loop import run_closed_loop

    result = run_closed_loop(s, count=args.count, rate=args.rate, users=args.users, items=args.items,
                             feedback_ratio=args.feedback_ratio, seed=args.sim_seed, progress=True)
    print(json.dumps(result, indent=2))
    return 0


def _from_file(s: config.Settings, path: str) -> int:
    from stream.client import EddyClient

    client = EddyClient(s)
    topics = {"eddy.query": s.topic("queries"), "eddy.feedback": s.topic("feedback")}
    sent = skipped = 0
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise config.ConfigError(f"--file {path!r}: {exc.strerror}") from None
    with fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            # Route by the schema name only; the worker validates the rest and
            # dead-letters what is wrong, so a bad line is never silently lost.
            try:
                obj = json.loads(line)
                name = str(obj.get("schema", "")).split("/")[0]
                key = str(obj.get("user_id", "")).encode() or None
            except (ValueError, AttributeError):
                name, key = "", None
            topic = topics.get(name)
            if topic is None:
                print(f"{path}:{lineno}: not a query or feedback event (schema {name!r}); sent to queries "
                      "so the worker dead-letters it with a reason", file=sys.stderr)
                topic = topics["eddy.query"]
                skipped += 1
            client.send_raw(topic, key, line.rstrip(b"\n"))
            sent += 1
    client.flush()
    print(f"sent {sent} events from {path} ({skipped} unrecognised)")
    return 0
