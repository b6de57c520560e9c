"""eddy export --format dsjson|obp [--output PATH] [log slice options]

Writes a joined slice of the decision log for other tools: VW DSJSON (one
line per decision, ``vw --cb_explore_adf --dsjson`` trains on it) or Open
Bandit Pipeline ``bandit_feedback`` arrays (.npz). See docs/replay.md.
"""

from __future__ import annotations

import argparse
import sys

from stream import config
from stream.argtypes import positive_int
from stream.replay.slicing import add_slice_arguments, slice_request


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("dsjson", "obp"), default="dsjson",
                   help="dsjson: VW decision-service JSON lines (default); obp: Open Bandit Pipeline arrays (.npz)")
    p.add_argument("--output", default=None, metavar="PATH",
                   help="file to write (default: reports/export-<timestamp>.dsjson or .npz)")
    p.add_argument("--context-dim", type=positive_int, default=64, metavar="D",
                   help="columns of the hashed OBP context matrix (default 64)")
    add_slice_arguments(p)
    config.add_arguments(p, only=("bootstrap", "topic_prefix", "join_window_s"))


def run(args: argparse.Namespace) -> int:
    from stream.replay.report import default_output
    from stream.replay.source import load_rounds

    settings = config.from_args(args)
    req = slice_request(args)
    loaded = load_rounds(settings, req, progress=True)
    print(f"eddy export: {loaded.stats.summary()}", file=sys.stderr)
    if args.format == "dsjson":
        from stream.replay.dsjson import write_dsjson

        out = args.output or default_output("export", "dsjson")
        n = write_dsjson(loaded.rounds, out)
        print(f"wrote {n} decisions to {out} (VW DSJSON: vw --cb_explore_adf --dsjson -d {out})")
    else:
        from stream.replay.obp import save_bandit_feedback

        log = loaded.log
        out = save_bandit_feedback(log, args.output or default_output("export", "npz"), context_dim=args.context_dim)
        print(f"wrote {log.n_rounds} rounds x {log.n_actions} actions to {out} "
              "(Open Bandit Pipeline bandit_feedback: dict(numpy.load(path)))")
    return 0
