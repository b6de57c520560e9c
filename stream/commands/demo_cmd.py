"""eddy demo [--quick]: the whole loop live on MovieLens-100K, with a comparison report.

Run it after ``deploy/stack up``. Steps: fetch MovieLens-100K into the cache
(or fall back to the simulator, loudly); train the feature net offline on
the first part of the ratings by time; register and promote it; start a
worker; stream the remaining ratings through Kafka as queries then feedback;
score the in-process references on the same stream; write
``reports/demo/<timestamp>/{report.md, report.json, prequential.png}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stream import config

QUICK = {"limit": 3000, "epochs": 1, "retrains": 1, "text_ratings": 0, "engine_ratings": 600}
# The demo's worker keeps new users on the offline population mean: the pooled online statistics
# are a worse prior for a newcomer on this stream (docs/demo.md, "The learner").
NEVER_S = 1e9


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help=f"CI mode: the first {QUICK['limit']} ratings, {QUICK['epochs']} epoch, "
                        f"{QUICK['retrains']} periodic retrain (about a minute)")
    p.add_argument("--data", choices=("movielens", "simulator"), default="movielens",
                   help="movielens (downloaded into the cache; falls back to the simulator) or simulator")
    p.add_argument("--cache-dir", default=None, help="where MovieLens is cached (default $EDDY_CACHE_DIR/movielens "
                                                     "or ~/.cache/eddy/movielens)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N ratings by time")
    p.add_argument("--train-fraction", type=float, default=0.5, help="share of ratings (by time) trained offline")
    p.add_argument("--candidates", type=int, default=5, help="candidates per query: the rated movie + sampled ones")
    p.add_argument("--epochs", type=int, default=None, help="offline training epochs (default 3; --quick 1)")
    p.add_argument("--retrains", type=int, default=None,
                   help="periodic-retrain arm: retrains over the stream (default 10; --quick 1)")
    p.add_argument("--text-ratings", type=int, default=None,
                   help="stream ratings scored by the expensive (text) feature net's arms, with and without the "
                        "feature cache (default 2000; --quick 0: skipped); 0 skips them")
    p.add_argument("--lsh-arm-bits", type=int, default=8,
                   help="SimHash bits of the MLP arm with a coarsened feature cache (0 skips it)")
    p.add_argument("--engine-ratings", type=int, default=None,
                   help="stream ratings served by the serving-layer arms through the worker's engine (expensive net "
                        "exact and under a deadline, cascade, Exp3, Exp4; default 3000; --quick 600); 0 skips them")
    p.add_argument("--deadline-ms", type=float, default=0.0,
                   help="the anytime arm's deadline and what counts as on time (default 0: calibrated so that the "
                        "expensive net's exact path misses it)")
    p.add_argument("--window", type=int, default=10_000,
                   help="live arm: ratings admitted but not yet learned from (default 10000); "
                        "a user's own ratings always go one after another")
    p.add_argument("--worker", choices=("process", "thread"), default="process",
                   help="run the worker as an `eddy worker` subprocess (default) or a thread of this process")
    p.add_argument("--out", default=None, help="report directory root (default <repo>/reports/demo)")
    p.add_argument("--keep", action="store_true",
                   help="keep the demo's topics, Redis keys and model files (only removed when the demo chose its "
                        "own --topic-prefix)")
    p.add_argument("--no-progress", action="store_true")
    config.add_arguments(p, only=("bootstrap", "redis_url", "topic_prefix", "partitions", "model_dir", "seed",
                                  "learner", "policy", "processing", "poll_timeout_ms", "prior_refresh_s", "max_batch",
                                  "torch_threads"))


def _check(args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit < 100:
        raise config.ConfigError(f"--limit must be >= 100, got {args.limit}")
    if not 0.05 <= args.train_fraction <= 0.95:
        raise config.ConfigError(f"--train-fraction must be in [0.05, 0.95], got {args.train_fraction}")
    if not (args.deadline_ms >= 0 and args.deadline_ms < 3_600_000):
        raise config.ConfigError(f"--deadline-ms must be in [0, 3600000), got {args.deadline_ms}")
    for name in ("text_ratings", "lsh_arm_bits", "engine_ratings"):
        v = getattr(args, name)
        if v is not None and not 0 <= v <= (64 if name == "lsh_arm_bits" else 10**9):
            raise config.ConfigError(f"--{name.replace('_', '-')} must be >= 0"
                                     + (" and <= 64" if name == "lsh_arm_bits" else "") + f", got {v}")
    if args.candidates < 1:
        raise config.ConfigError(f"--candidates must be >= 1, got {args.candidates}")
    for name in ("epochs", "retrains", "window"):
        v = getattr(args, name)
        if v is not None and v < (0 if name == "retrains" else 1):
            raise config.ConfigError(f"--{name} must be >= {0 if name == 'retrains' else 1}, got {v}")


def _settings(args: argparse.Namespace, run_id: str) -> tuple[config.Settings, bool]:
    """The demo's settings; its own topic prefix (and model dir) unless one was given. Returns (settings, owned)."""
    import os

    owned = args.topic_prefix is None and "EDDY_TOPIC_PREFIX" not in os.environ
    # demo defaults (a flag or EDDY_<NAME> wins): see docs/demo.md for why
    overrides = {"policy": "greedy", "poll_timeout_ms": 5, "learner": "rls", "prior_refresh_s": NEVER_S,
                 "instance_id": f"demo-{run_id}"}
    if owned:
        prefix = f"demo{run_id}."
        base = config.from_args(args)
        overrides.update(topic_prefix=prefix, model_dir=str(Path(base.model_dir) / prefix.rstrip(".")))
    for name in ("policy", "poll_timeout_ms", "learner", "prior_refresh_s"):
        if getattr(args, name) is not None or f"EDDY_{name.upper()}" in os.environ:
            overrides.pop(name)
    s = config.from_args(args)
    s = config.replace(s, **overrides, group=f"{overrides.get('topic_prefix', s.topic_prefix)}demo-workers")
    from bandits import BanditError, make_policy

    try:  # fail now, not in the worker
        make_policy(s.policy)
    except BanditError as exc:
        raise config.ConfigError(f"--policy {s.policy!r}: {exc}") from None
    return s.validated(), owned


def _check_stack(s: config.Settings) -> None:
    """One clear line when the stack is down (a plain TCP probe first: librdkafka would retry noisily)."""
    import socket

    from stream.kafka_io import wait_for_broker
    from stream.store import RedisStore

    host, _, port = s.bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=3).close()
    except (OSError, ValueError) as exc:
        raise config.ConfigError(f"no Kafka broker at {s.bootstrap} ({getattr(exc, 'strerror', None) or exc}); "
                                 "start the stack first: deploy/stack up") from None
    wait_for_broker(s, timeout_s=10)
    try:
        RedisStore.from_settings(s).ping()
    except Exception as exc:  # noqa: BLE001 - any connection failure means the same thing here
        raise config.ConfigError(f"no Redis answered at {s.redis_url} (start it with: deploy/stack up): {exc}") from None


def run(args: argparse.Namespace) -> int:
    from features.model import limit_threads
    from stream.demo import data

    _check(args)
    run_id = time.strftime("%Y%m%d-%H%M%S")
    s, owned = _settings(args, run_id)
    _check_stack(s)
    limit_threads(s.torch_threads)
    quick = args.quick
    limit = args.limit or (QUICK["limit"] if quick else None)
    epochs = args.epochs or (QUICK["epochs"] if quick else 3)
    retrains = args.retrains if args.retrains is not None else (QUICK["retrains"] if quick else 10)
    say = (lambda *a: None) if args.no_progress else (lambda msg: print(msg, file=sys.stderr, flush=True))
    out_root = Path(args.out) if args.out else config.REPO_ROOT / "reports" / "demo"
    out_dir = _fresh_dir(out_root, run_id)

    ds = data.load(args.data, cache_dir=Path(args.cache_dir) if args.cache_dir else None, limit=limit,
                   sim_size=QUICK["limit"] if quick else 20_000, seed=s.seed)
    if ds.fallback_reason:
        banner = "!" * 78
        print(f"{banner}\n!! MovieLens-100K is NOT available: {ds.fallback_reason}\n"
              f"!! FALLING BACK to the built-in simulator: the figures below are NOT MovieLens figures.\n{banner}",
              file=sys.stderr, flush=True)
    say(f"data: {ds.description}")
    say(f"deployment: topics {s.topic_prefix}*, models in {s.model_dir}, report in {out_dir}")

    from stream.demo.pipeline import Demo

    demo = Demo(s, ds, out_dir=out_dir, run_id=run_id, train_fraction=args.train_fraction, epochs=epochs,
                retrains=retrains, n_candidates=args.candidates, window=args.window, worker_mode=args.worker,
                progress=not args.no_progress,
                text_ratings=args.text_ratings if args.text_ratings is not None else (
                    QUICK["text_ratings"] if quick else 2000),
                lsh_arm_bits=args.lsh_arm_bits,
                engine_ratings=args.engine_ratings if args.engine_ratings is not None else (
                    QUICK["engine_ratings"] if quick else 3000),
                deadline_ms=args.deadline_ms)
    try:
        result = demo.run()
    finally:
        if owned and not args.keep:
            demo.cleanup()
    print(result["table"])
    rel = result["summary"].get("hybrid_vs_biased_mf")
    if rel is not None:
        print(f"Eddy's live hybrid (b) against river's BiasedMF (d): {abs(rel):.2%} "
              f"{'lower' if rel < 0 else 'higher'} prequential RMSE")
    for name, path in result["paths"].items():
        print(f"{name}: {path}")
    if owned and args.keep:
        print(f"kept: topics {s.topic_prefix}*, models in {s.model_dir} "
              f"(e.g. eddy models --topic-prefix {s.topic_prefix} --model-dir {s.model_dir} list)")
    return 0


def _fresh_dir(root: Path, run_id: str) -> Path:
    out, k = root / run_id, 1
    while out.exists():
        k += 1
        out = root / f"{run_id}-{k}"
    return out
