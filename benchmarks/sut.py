"""Entry point of a system under test, run as its own process: ``python -m benchmarks.sut KIND``.

Settings come from the EDDY_* environment (see :mod:`stream.config`), which
:mod:`benchmarks.systems` sets per system. Kinds:

* ``eddy``: :class:`stream.worker.Worker`, unchanged (with ``--profile PATH``,
  SIGUSR1 starts cProfile and SIGUSR2 stops it and writes the stats, so one
  load step is profiled, not start-up);
* ``echo``: the Kafka floor, the worker with its work taken out; ``naive``:
  the per-event pipeline (both in :mod:`benchmarks.processors`);
* ``http``: the ASGI app of :mod:`benchmarks.http_app` under uvicorn, one
  worker process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time

from stream import config


def _profile_on_signals(path: str) -> None:
    """SIGUSR1: start a fresh cProfile; SIGUSR2: stop it, write PATH (stats) and PATH.json (profiled wall time)."""
    import cProfile

    state: dict = {}

    def start(*_: object) -> None:
        state["profiler"] = cProfile.Profile()
        state["t0"] = time.perf_counter()
        state["profiler"].enable()

    def stop(*_: object) -> None:
        profiler = state.pop("profiler", None)
        if profiler is None:
            return
        profiler.disable()
        profiler.dump_stats(path)
        # The runner waits for this file to exist, then reads it: written whole under another name first.
        with open(path + ".json.part", "w") as fh:
            json.dump({"wall_s": time.perf_counter() - state["t0"]}, fh)
        os.replace(path + ".json.part", path + ".json")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sut")
    p.add_argument("kind", choices=("eddy", "echo", "naive", "http"))
    p.add_argument("--profile", metavar="PATH",
                   help="eddy only: SIGUSR1 starts cProfile, SIGUSR2 stops it and writes the stats to PATH")
    p.add_argument("--port", type=int, default=0, help="http only: port to listen on (127.0.0.1)")
    p.add_argument("--processes", type=int, default=1, help="eddy only: worker processes (group members)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = config.from_env()
    if args.kind in ("eddy", "echo"):
        if args.kind == "eddy" and args.processes > 1:
            from stream.processes import run_processes

            return run_processes(settings, args.processes)
        if args.kind == "eddy":
            from stream.worker import Worker

            worker = Worker(settings)
        else:
            from benchmarks.processors import echo_worker

            worker = echo_worker(settings)
        if args.profile:
            _profile_on_signals(args.profile)
        stats = worker.run()
        print(" ".join(f"{k}={v}" for k, v in sorted(stats.items())), flush=True)
        return 0
    if args.kind == "naive":
        from benchmarks.processors import run_naive

        return run_naive(settings)
    import uvicorn

    # keep-alive far longer than uvicorn's 5 s default: the generator's connections idle between phases
    uvicorn.run("benchmarks.http_app:create_app", factory=True, host="127.0.0.1", port=args.port, workers=1,
                log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
