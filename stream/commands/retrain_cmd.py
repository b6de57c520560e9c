"""eddy retrain [--watch]: retrain the feature net from the logged outcomes.

Without ``--watch``: retrain once now, register, promote. With ``--watch``:
follow ``model-updates``; every user-weight update carries ``summary.error``,
the prequential error (reward minus the prediction before the update). Keep
the RMSE of the last ``--window`` errors of the live feature net; retrain when
it exceeds ``--threshold`` x its value right after the last (re)train, or when
``--every-minutes`` have passed since it.

With ``--monitor-url`` (``eddy monitor``'s ``/metrics``), the same rule reads
the monitor's figure instead: the hopping-window prediction RMSE of the live
feature net, once that window started after the last (re)train and holds at
least ``--window`` outcomes (:mod:`stream.monitor.signal`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from stream import config
from stream.argtypes import torch_device


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--watch", action="store_true", help="keep watching the online error; retrain when it degrades")
    p.add_argument("--threshold", type=float, default=1.2,
                   help="retrain when the rolling RMSE exceeds this x its value after the last retrain (default 1.2)")
    p.add_argument("--window", type=int, default=500, help="errors in the rolling RMSE (default 500)")
    p.add_argument("--monitor-url", default=None,
                   help="--watch: read the live feature net's hopping-window RMSE from eddy monitor's /metrics "
                        "(e.g. http://127.0.0.1:9410/metrics) instead of the model-updates errors")
    p.add_argument("--every-minutes", type=float, default=None, help="also retrain on this schedule")
    p.add_argument("--since-minutes", type=float, default=None, help="train on the last N minutes of outcomes (default all)")
    p.add_argument("--from-beginning", action="store_true",
                   help="--watch: read model-updates from the oldest record, not from now")
    p.add_argument("--no-promote", action="store_true", help="register new versions without making them live")
    p.add_argument("--max-retrains", type=int, default=None, help="--watch: stop after this many retrains")
    p.add_argument("--max-seconds", type=float, default=None, help="--watch: stop after this long")
    p.add_argument("--min-examples", type=int, default=100, help="skip a retrain with fewer logged outcomes (default 100)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--output-dim", type=int, default=16, help="dimension d of f(x, item)")
    p.add_argument("--device", type=torch_device, default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--no-progress", action="store_true")
    config.add_arguments(p, only=("bootstrap", "redis_url", "topic_prefix", "partitions", "model_dir", "seed",
                                  "monitor_hopping_s", "monitor_hop_s"))


def _check(args: argparse.Namespace) -> None:
    if args.window < 1:
        raise config.ConfigError(f"--window must be >= 1, got {args.window}")
    for name in ("max_retrains", "max_seconds", "every_minutes", "since_minutes"):
        v = getattr(args, name)
        if v is not None and not v > 0:
            raise config.ConfigError(f"--{name.replace('_', '-')} must be > 0, got {v}")
    if not args.watch and any(getattr(args, n) is not None
                              for n in ("max_retrains", "max_seconds", "every_minutes", "monitor_url")):
        raise config.ConfigError("--every-minutes, --max-retrains, --max-seconds and --monitor-url need --watch")
    if args.monitor_url is not None and not args.monitor_url.startswith(("http://", "https://")):
        raise config.ConfigError(f"--monitor-url must be an http:// or https:// URL, got {args.monitor_url!r}")


def run(args: argparse.Namespace) -> int:
    from stream.store import open_registry
    from stream.retrain_trigger import RetrainTrigger
    from stream.training import TrainOptions

    _check(args)
    s = config.from_args(args)
    trigger = RetrainTrigger(args.threshold, None if args.every_minutes is None else 60 * args.every_minutes,
                             time.monotonic())
    opts = TrainOptions(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, output_dim=args.output_dim,
                        device=args.device, progress=not args.no_progress, min_examples=args.min_examples).check()
    registry = open_registry(s)
    if not args.watch:
        from stream.kafka_io import ensure_topics

        ensure_topics(s, ("outcomes",))
        version = retrain_once(s, registry, opts, reason="manual", since_minutes=args.since_minutes,
                               promote=not args.no_promote)
        if version:
            print(version)
        return 0 if version else 1
    return watch(s, registry, opts, trigger, args)


def retrain_once(s: config.Settings, registry, opts, *, reason: str, since_minutes: float | None,
                 promote: bool, extra: dict | None = None) -> str | None:
    """Train from the logged outcomes and register (+ promote); None when too few outcomes."""
    from stream import training

    records, meta = training.records_from_log(s, since_minutes, progress=opts.progress)
    if len(records) < opts.min_examples:
        print(f"retrain skipped: {len(records)} logged outcomes < --min-examples {opts.min_examples}",
              file=sys.stderr, flush=True)
        return None
    live = registry.live()
    if live is not None:  # a retrain keeps the live version's kind (the text kind and its text field)
        cfg = registry.show(live).get("feature_net") or {}
        if cfg.get("kind") == "text":
            opts = dataclasses.replace(opts, kind="text", item_text=cfg.get("item_text"))
    model = training.train(records, opts, version=registry.next_version(), seed=s.seed)
    training.register(registry, model, {**meta, "trigger": reason, **(extra or {})})
    if promote:
        training.promote(s, registry, model.version)
    return model.version


def watch(s: config.Settings, registry, opts, trigger, args: argparse.Namespace) -> int:
    from stream.client import reader
    from stream.kafka_io import ensure_topics
    from stream.retrain_trigger import RollingRMSE

    ensure_topics(s, ("model-updates", "outcomes"))
    live = registry.live()
    if live is None:
        raise config.ConfigError("no live feature-net version to watch; train and promote one first")
    if args.monitor_url:
        from stream.monitor.app import window_names
        from stream.monitor.signal import WindowRMSE

        rolling = WindowRMSE(window=window_names(s)[1], min_outcomes=args.window, not_before=time.time())
    else:
        rolling = RollingRMSE(args.window)
    state = _Watch(live=live, rolling=rolling, trigger=trigger, count_errors=not args.monitor_url)
    consumer = reader(s, [s.topic("model-updates")], from_beginning=args.from_beginning)
    start = time.monotonic()
    trigger.reset(start)
    next_report = start + 10
    next_scrape = start
    signal = (f"the monitor's {rolling.window} prediction RMSE (>= {args.window} outcomes) at {args.monitor_url}"
              if args.monitor_url else f"the RMSE of the last {args.window} prequential errors")
    print(f"watching {s.topic('model-updates')}: live {live}; retrain when {signal} "
          f"> {args.threshold:g} x its value after the last (re)train"
          + (f", or every {args.every_minutes:g} min" if args.every_minutes else ""), file=sys.stderr, flush=True)
    try:
        while args.max_retrains is None or state.retrains < args.max_retrains:
            if args.max_seconds is not None and time.monotonic() - start >= args.max_seconds:
                print(f"stopping: --max-seconds {args.max_seconds:g} reached", file=sys.stderr)
                break
            reasons = [state.observe(m.value()) for m in consumer.consume(500, 0.2) if not m.error()]
            if args.monitor_url and time.monotonic() >= next_scrape:
                next_scrape = time.monotonic() + 2
                _scrape_monitor(args.monitor_url, state)
            reasons.append(trigger.check(state.rolling, time.monotonic()))  # the schedule, with no traffic too
            reason = next((r for r in reasons if r), None)
            if reason is not None:
                _retrain(s, registry, opts, state, reason, args)
            elif time.monotonic() >= next_report:
                next_report = time.monotonic() + 10
                base = "-" if trigger.baseline is None else f"{trigger.baseline:.4f}"
                print(f"live {state.live}: rolling RMSE {state.rolling.value:.4f} over {state.rolling.n} errors "
                      f"(baseline {base})", file=sys.stderr, flush=True)
        else:
            print(f"stopping: --max-retrains {args.max_retrains} reached", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


class _Watch:
    """What the watch has seen: the live version, its rolling error, the trigger, retrains so far."""

    def __init__(self, *, live: str, rolling, trigger, count_errors: bool = True):
        self.live, self.rolling, self.trigger, self.retrains = live, rolling, trigger, 0
        self.count_errors = count_errors  # False: the monitor's figure is the signal (_scrape_monitor)
        self.monitor_down = False

    def observe(self, raw: bytes | None) -> str | None:
        """Fold one model-update in; the retrain reason it causes, if any (checked per error, so a
        burst read in one poll still sets the baseline from the first full window)."""
        from stream import events

        try:
            u = events.decode_json(raw)
        except events.EventError:
            return None
        if u.get("kind") == "feature_net" and u.get("version") != self.live:
            self.live = str(u.get("version"))
            print(f"live feature net is now {self.live} (promoted elsewhere): baseline reset",
                  file=sys.stderr, flush=True)
            self.rolling.clear()
            self.trigger.reset(time.monotonic())
        elif self.count_errors and u.get("kind") == "user_weights" and u.get("feature_net_version") == self.live:
            err = (u.get("summary") or {}).get("error")
            if isinstance(err, (int, float)) and not isinstance(err, bool):
                self.rolling.add(err)
                return self.trigger.check(self.rolling, time.monotonic())
        return None


def _scrape_monitor(url: str, state: _Watch) -> None:
    """Read the monitor's figures into ``state.rolling``; an unreachable monitor is said once and waited out."""
    from stream.monitor.signal import scrape

    try:
        samples = scrape(url)
    except (OSError, ValueError) as exc:
        if not state.monitor_down:
            print(f"eddy monitor not answering at {url} ({exc}); still watching", file=sys.stderr, flush=True)
        state.monitor_down = True
        return
    state.monitor_down = False
    state.rolling.update(samples, live=state.live)


def _retrain(s: config.Settings, registry, opts, state: _Watch, reason: str, args: argparse.Namespace) -> None:
    print(f"retraining from {s.topic('outcomes')}: {reason}", file=sys.stderr, flush=True)
    version = retrain_once(s, registry, opts, reason=reason, since_minutes=args.since_minutes,
                           promote=not args.no_promote,
                           extra={"rolling_rmse": state.rolling.value, "baseline_rmse": state.trigger.baseline})
    if version is not None:
        state.retrains += 1
        print(version, flush=True)
        if not args.no_promote:
            state.live = version
            state.rolling.clear()
    state.trigger.reset(time.monotonic())  # measure the new baseline from here (also after --no-promote)
