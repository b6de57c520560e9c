"""What a Redis Cluster costs the worker's commit: one Redis against three masters, side by side.

    python -m benchmarks.redis_cluster [--batches 200] [--output-dir benchmarks/results]

Starts its own redis-server and its own three-master cluster (``deploy/redis-cluster``),
both with ``appendfsync always``, on free ports in a temporary directory, and times
:meth:`stream.store.RedisStore.commit` of batches spread over 4 partitions (per record a
user state and a ~500-byte join record): one MULTI/EXEC against one Redis, one per
partition against the cluster (docs/design.md, "Redis Cluster"). Writes
``redis-cluster-<timestamp>.json``.
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

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "redis-cluster"
PARTITIONS = 4
SIZES = (4, 64)


def _free_ports(n: int) -> list[int]:
    """``n`` free loopback ports whose +10000 (a cluster node's bus port) is free too."""
    out: list[int] = []
    for port in range(21000, 55535, 7):
        ok = True
        for p in (port, port + 10000):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            out.append(port)
            if len(out) == n:
                return out
    raise RuntimeError("no free ports")


def _timings(url: str, size: int, batches: int) -> dict:
    store = RedisStore(url, f"bench{size}.")
    epochs = store.claim("g", range(PARTITIONS))
    ms = []
    for i in range(batches):
        write = BatchWrite(users={("v1", f"u{j}"): (b"s" * 200, j % PARTITIONS) for j in range(size)},
                           decisions={f"r{i}.{j}": (b"d" * 500, j % PARTITIONS) for j in range(size)},
                           counts={"consumed": size})
        t0 = time.perf_counter()
        assert store.commit(write, group="g", epochs=epochs, instance="b")
        ms.append((time.perf_counter() - t0) * 1000)
    store.delete_deployment()
    return {"batch_records": size, "partitions": PARTITIONS, "median_ms": round(float(np.median(ms)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.redis_cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--output-dir", default="benchmarks/results")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="eddy-redis-cluster-bench-"))
    single_port, *cluster_ports = _free_ports(4)
    cluster_args = ["--dir", str(work / "cluster"), "--ports", ",".join(map(str, cluster_ports))]
    single = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(single_port),
                               "--bind", "127.0.0.1", "--dir", str(work), "--appendonly", "yes",
                               "--appendfsync", "always", "--save", ""], stdout=subprocess.DEVNULL)
    try:
        subprocess.run([str(SCRIPT), "up", *cluster_args], check=True, capture_output=True, timeout=120)
        urls = {"one Redis": f"redis://127.0.0.1:{single_port}/0",
                "3-master cluster": f"redis+cluster://127.0.0.1:{cluster_ports[0]}"}
        time.sleep(0.5)
        rows = [{"redis": name, **_timings(url, size, args.batches)} for size in SIZES for name, url in urls.items()]
    finally:
        subprocess.run([str(SCRIPT), "down", *cluster_args], capture_output=True, timeout=60)
        single.terminate()
        single.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        print(f"{row['redis']:17s} batch of {row['batch_records']:3d} over {PARTITIONS} partitions: "
              f"median {row['median_ms']:6.2f} ms  p95 {row['p95_ms']:6.2f} ms")
    out = Path(args.output_dir) / f"redis-cluster-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"batches": args.batches, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
