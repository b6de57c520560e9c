"""eddy train --from-file DATA | --from-log | --simulate N"""

from __future__ import annotations

import argparse
import json
import sys

from stream import config


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-file", metavar="PATH",
                     help="JSONL or Parquet of {user_id, context, item: {id, features}, reward[, ts]}, in time order")
    src.add_argument("--from-log", action="store_true", help="the joined outcomes logged by the workers")
    src.add_argument("--simulate", type=int, metavar="N", help="N examples from the built-in simulator")
    p.add_argument("--since-minutes", type=float, default=None, help="with --from-log: only the last N minutes")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--output-dim", type=int, default=16, help="dimension d of f(x, item)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--promote", action="store_true", help="make the new version live")
    p.add_argument("--no-progress", action="store_true")
    config.add_arguments(p, only=("bootstrap", "redis_url", "topic_prefix", "partitions", "model_dir", "seed"))


def read_records(path: str) -> list[dict]:
    if path.endswith(".parquet"):
        import pandas as pd

        frame = pd.read_parquet(path)
        rows = frame.to_dict("records")
        for r in rows:
            for k in ("context", "item"):
                if isinstance(r.get(k), str):
                    r[k] = json.loads(r[k])
        return rows
    rows = []
    try:
        with open(path) as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as exc:
                        raise config.ConfigError(f"{path}:{lineno}: not JSON ({exc})") from None
    except OSError as exc:
        raise config.ConfigError(f"--from-file {path!r}: {exc.strerror}") from None
    return rows


def records_from_log(settings: config.Settings, since_minutes: float | None) -> tuple[list[dict], dict]:
    from stream import events
    from stream.logread import Slice, read_slice

    rows, first, last = [], None, None
    for _, _, ts, value in read_slice(settings, settings.topic("outcomes"), Slice.last_minutes(since_minutes), progress=True):
        o = events.decode_outcome(value)
        item = next(c for c in o.decision.candidates if c.id == o.item_id)
        rows.append({"user_id": o.decision.user_id, "context": o.decision.context, "item": item.to_dict(),
                     "reward": o.reward, "ts": o.decision.ts})
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
    rows.sort(key=lambda r: r["ts"])
    return rows, {"source": "log", "topic": settings.topic("outcomes"), "from_ts": first, "to_ts": last}


def run(args: argparse.Namespace) -> int:
    from features.config import FeatureNetConfig
    from features.train import examples_from_records, train_feature_net
    from stream.registry import Registry
    from stream.store import RedisStore

    s = config.from_args(args)
    if args.from_file:
        records = read_records(args.from_file)
        meta = {"source": f"file:{args.from_file}"}
    elif args.from_log:
        records, meta = records_from_log(s, args.since_minutes)
    else:
        from stream.simulator import SimulatedWorld

        records = [{"user_id": u, "context": c, "item": i, "reward": r}
                   for u, c, i, r in SimulatedWorld(seed=s.seed).training_examples(args.simulate)]
        meta = {"source": f"simulator:{args.simulate}"}
    if len(records) < 20:
        raise config.ConfigError(f"only {len(records)} training examples; need at least 20")
    examples = examples_from_records(records)
    cfg = FeatureNetConfig.infer(examples, output_dim=args.output_dim)
    registry = Registry(RedisStore(s.redis_url, s.topic_prefix, decision_ttl_s=1).client, s.topic_prefix, s.model_dir)
    version = registry.next_version()
    model = train_feature_net(examples, cfg, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              seed=s.seed, device=args.device, progress=not args.no_progress, version=version)
    ts = [float(r["ts"]) for r in records if isinstance(r.get("ts"), (int, float))]
    model.meta["data_range"] = meta["data_range"] = {
        "from_ts": min(ts, default=None), "to_ts": max(ts, default=None), "n_examples": len(records)}
    registry.register(model, {**meta, "n_examples": len(examples)})
    m = model.metrics
    print(f"registered {version}: val_rmse={m.get('val_rmse'):.4f} (baseline {m.get('baseline_val_rmse'):.4f}) "
          f"on {m.get('device')} in {m.get('seconds', 0):.1f}s", file=sys.stderr)
    if args.promote:
        from stream.commands.models_cmd import publish_swap

        old = registry.promote(version)
        publish_swap(s, old, version)
        print(f"live: {version} (was {old or 'none'})", file=sys.stderr)
    print(version)
    return 0
