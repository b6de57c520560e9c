"""eddy train --from-file DATA | --from-log | --simulate N"""

from __future__ import annotations

import argparse

from stream import config
from stream.argtypes import positive_float, positive_int, torch_device


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from-file", metavar="PATH",
                     help="JSONL or Parquet of {user_id, context, item: {id, features}, reward[, ts]}, in time order")
    src.add_argument("--from-log", action="store_true", help="the joined outcomes logged by the workers")
    src.add_argument("--simulate", type=positive_int, metavar="N", help="N examples from the built-in simulator")
    p.add_argument("--since-minutes", type=positive_float, default=None, help="with --from-log: only the last N minutes")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--output-dim", type=int, default=16, help="dimension d of f(x, item)")
    p.add_argument("--kind", choices=("mlp", "text"), default="mlp",
                   help="feature-net kind: mlp, or text (an MLP head over the item text's sentence encoding)")
    p.add_argument("--item-text", metavar="FIELD", default=None,
                   help="with --kind text: the items' text field (item.features.FIELD)")
    p.add_argument("--device", type=torch_device, default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--promote", action="store_true", help="make the new version live")
    p.add_argument("--no-progress", action="store_true")
    config.add_arguments(p, only=("bootstrap", "redis_url", "topic_prefix", "partitions", "model_dir", "seed"))


def run(args: argparse.Namespace) -> int:
    from stream import training
    from stream.store import open_registry

    s = config.from_args(args)
    opts = training.TrainOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                 output_dim=args.output_dim, device=args.device, progress=not args.no_progress,
                                 kind=args.kind, item_text=args.item_text).check()
    if args.from_file:
        records, meta = training.read_records(args.from_file), {"source": f"file:{args.from_file}"}
    elif args.from_log:
        records, meta = training.records_from_log(s, args.since_minutes, progress=not args.no_progress)
    else:
        from stream.simulator import SimulatedWorld

        records = [{"user_id": u, "context": c, "item": i, "reward": r}
                   for u, c, i, r in SimulatedWorld(seed=s.seed).training_examples(args.simulate)]
        meta = {"source": f"simulator:{args.simulate}"}
    if len(records) < opts.min_examples:  # before the registry: a bad file needs no Redis to be refused
        raise config.ConfigError(f"only {len(records)} training examples; need at least {opts.min_examples}")
    registry = open_registry(s)
    model = training.train(records, opts, version=registry.next_version(), seed=s.seed)
    training.register(registry, model, {**meta, "trigger": "eddy train"})
    if args.promote:
        training.promote(s, registry, model.version)
    print(model.version)
    return 0
