"""eddy monitor: windowed figures of the decision log (a faust app), exported to Prometheus.

See docs/monitor.md for the tables and the metrics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stream import config

_SETTINGS = ("bootstrap", "topic_prefix", "partitions", "monitor_port", "metrics_bind", "monitor_tumbling_s", "monitor_hopping_s",
             "monitor_hop_s")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datadir", type=Path, default=None,
                   help="faust's directory (default: $EDDY_STATE_DIR/monitor); the tables' state is in Kafka")
    config.add_arguments(p, only=_SETTINGS)


def run(args: argparse.Namespace) -> int:
    from faust import Worker
    from prometheus_client import CollectorRegistry, start_http_server

    from stream.monitor.app import build_app, ensure_monitor_topics
    from stream.monitor.export import Snapshot

    s = config.from_args(args)
    snapshot = None
    if s.monitor_port:
        snapshot = Snapshot()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(snapshot)
        try:
            start_http_server(s.monitor_port, addr=s.metrics_bind, registry=registry)
        except OSError as exc:
            raise config.ConfigError(f"--monitor-port {s.monitor_port}: cannot listen on {s.metrics_bind} "
                                     f"({exc.strerror or exc}); choose another port, or 0 for none") from None
    partitions = ensure_monitor_topics(s)  # after the port: a port in use creates no topics
    datadir = args.datadir or Path(config._default_state_dir()) / "monitor"
    datadir.mkdir(parents=True, exist_ok=True)
    app = build_app(s, datadir, partitions, snapshot)
    Worker(app, loglevel="INFO" if not args.verbose else "DEBUG", quiet=True).execute_from_commandline()
    return 0
