"""What Redis durability costs the worker: one batch's commit (the store's commit script) under ``appendfsync no``
(the stack's default), ``everysec`` and ``always``, side by side in one run, on redis-servers of this run's own.

    python -m benchmarks.redis_durability [--batches 500] [--output-dir benchmarks/results]

Each sample is :meth:`stream.store.RedisStore.commit` of a batch shaped like the worker's
(per query a join record of ~2 KB, per feedback a user state, a marker and the population
statistics), for several batch sizes. Writes ``redis-durability-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from stream.engine import BatchWrite
from stream.store import RedisStore

SIZES = (1, 16, 256)
POLICIES = ("no", "everysec", "always")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(policy: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(workdir), "--appendonly", "yes", "--appendfsync", policy, "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    store = RedisStore(url, "probe:")
    for _ in range(200):
        try:
            store.ping()
            return proc, url
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.05)
    raise SystemExit(f"redis-server ({policy}) did not start")


def _batch(i: int, n: int) -> BatchWrite:
    half = max(1, n // 2)
    return BatchWrite(
        users={("v1", f"u{i}-{j}"): (b"s" * 300, j % 4) for j in range(half)},
        applied={f"f{i}-{j}": (b"m" * 400, j % 4) for j in range(half)},
        population={("v1", p): b"p" * 2400 for p in range(min(4, half))},
        decisions={f"r{i}-{j}": (b"d" * 2000, j % 4) for j in range(n)},
        counts={"consumed": 2 * n},
    )


def measure(batches: int) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for p in POLICIES:
            (Path(tmp) / p).mkdir()
        servers = {p: _server(p, Path(tmp) / p) for p in POLICIES}
        try:
            stores = {p: RedisStore(url, "bench:") for p, (_, url) in servers.items()}
            for n in SIZES:
                lat: dict[str, list[float]] = {p: [] for p in POLICIES}
                for i in range(batches):  # interleaved, so both see the same machine noise
                    for p in POLICIES:
                        w = _batch(i, n)
                        t0 = time.perf_counter()
                        stores[p].commit(w, group="g", epochs={})
                        lat[p].append((time.perf_counter() - t0) * 1000)
                out[str(n)] = {p: {str(q): round(float(np.percentile(v, q)), 3) for q in (50, 90, 99)}
                               for p, v in lat.items()}
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=10)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.redis_durability", description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=500, help="samples per batch size and policy")
    ap.add_argument("--output-dir", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "batches": args.batches,
              "ms_per_commit": measure(args.batches)}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    path = args.output_dir / f"redis-durability-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    print("| batch (queries) | " + " | ".join(f"{p} p50 / p99 ms" for p in POLICIES) + " |\n|---|"
          + "---|" * len(POLICIES))
    for n, r in result["ms_per_commit"].items():
        print(f"| {n} | " + " | ".join(f"{r[p]['50']} / {r[p]['99']}" for p in POLICIES) + " |")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
