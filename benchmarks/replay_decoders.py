"""Columnar NDJSON readers against msgspec on a DSJSON file: what reading replay's keys costs each of them.

``python -m benchmarks.replay_decoders [--rounds N] [--repeat R]`` writes N
synthetic decisions (:func:`stream.replay.synthetic.synthetic_rounds`) as
DSJSON and reads only the keys replay needs with: msgspec into replay's lean
Structs (:class:`~stream.replay.dsjson_schema.DSJsonRead`, then freed: the
floor of today's reader, before its columns are built); pyarrow's JSON reader
with an explicit schema of those keys (one thread, and its thread pool);
and polars' ``read_ndjson`` with the same schema, when polars is importable
(it is not one of Eddy's dependencies: ``pip install --target DIR polars``
and ``PYTHONPATH=DIR`` to include it). The arrow readers write columns
directly; none of them reads ``c.x`` (contexts with arbitrary keys have no
fixed schema). Then replay's own reader in its parts (decode, columns, freeing
the decoded lines). Runs interleave, best of ``--repeat``, CPU seconds of this
process (every thread counted) and wall seconds. Writes
``benchmarks/results/replay-decoders-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def reader_stages(buf: bytes, name: str, repeat: int) -> dict[str, dict[str, float]]:
    """Replay's own file reader (:func:`stream.replay.dsjson.read_dsjson_columns`) in its three parts, each
    timed alone: msgspec's decode (the lines kept), the columns built from the decoded lines, and freeing them."""
    from stream.replay.columns import without_gc
    from stream.replay.dsjson import _READ_DECODER, _columns, _Lines

    lines = _Lines(name, buf)
    best = {k: {"cpu_s": float("inf"), "wall_s": float("inf")} for k in (
        "replay's reader: msgspec decode_lines", "replay's reader: columns from the decoded lines",
        "replay's reader: freeing the decoded lines")}

    @without_gc
    def once() -> None:
        times = []
        c0, w0 = time.process_time(), time.perf_counter()
        rows = _READ_DECODER.decode_lines(buf)
        times.append((time.process_time() - c0, time.perf_counter() - w0))
        c0, w0 = time.process_time(), time.perf_counter()
        _columns(rows, lines)
        times.append((time.process_time() - c0, time.perf_counter() - w0))
        c0, w0 = time.process_time(), time.perf_counter()
        del rows
        times.append((time.process_time() - c0, time.perf_counter() - w0))
        for b, (cpu, wall) in zip(best.values(), times):
            b["cpu_s"], b["wall_s"] = min(b["cpu_s"], cpu), min(b["wall_s"], wall)

    for _ in range(repeat):
        once()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay_decoders", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    import msgspec
    import pyarrow as pa
    import pyarrow.json as pj

    from stream.replay.dsjson import write_dsjson
    from stream.replay.dsjson_schema import DSJsonRead
    from stream.replay.synthetic import synthetic_rounds

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.dsjson"
        write_dsjson(synthetic_rounds(args.rounds, seed=0)[0], path)
        buf = path.read_bytes()
    lean = msgspec.json.Decoder(DSJsonRead)
    schema = pa.schema([
        ("_label_cost", pa.float64()), ("_label_probability", pa.float64()), ("_label_Action", pa.int64()),
        ("_labelIndex", pa.int64()), ("Timestamp", pa.string()), ("EventId", pa.string()), ("a", pa.list_(pa.int64())),
        ("c", pa.struct([("u", pa.struct([("user_id", pa.string())])),
                         ("_multi", pa.list_(pa.struct([("i", pa.struct([("id", pa.string())]))])))])),
        ("p", pa.list_(pa.float64())),
        ("_eddy", pa.struct([("user_id", pa.string()), ("ts", pa.float64()), ("scores", pa.list_(pa.float64())),
                             ("seed", pa.uint64()), ("reward", pa.float64()), ("feedback_ts", pa.float64()),
                             ("imputed", pa.bool_()), ("position", pa.int64()), ("taken", pa.list_(pa.int64()))]))])

    def msgspec_lean() -> None:
        gc.disable()  # as replay's reader does
        try:
            lean.decode_lines(buf)
        finally:
            gc.enable()

    def pyarrow_read(threads: bool) -> None:
        pj.read_json(io.BytesIO(buf), read_options=pj.ReadOptions(use_threads=threads, block_size=1 << 22),
                     parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))

    readers = {"msgspec into DSJsonRead (and freed)": msgspec_lean,
               "pyarrow.json, one thread": lambda: pyarrow_read(False),
               "pyarrow.json, thread pool": lambda: pyarrow_read(True)}
    versions = {"msgspec": msgspec.__version__, "pyarrow": pa.__version__}
    try:
        import polars as pl
    except ImportError:
        versions["polars"] = None
    else:
        versions["polars"] = pl.__version__
        pl_schema = pl.from_arrow(schema.empty_table()).schema
        readers["polars.read_ndjson"] = lambda: pl.read_ndjson(io.BytesIO(buf), schema=pl_schema)
    best = {name: {"cpu_s": float("inf"), "wall_s": float("inf")} for name in readers}
    for _ in range(args.repeat):
        for name, read in readers.items():
            c0, w0 = time.process_time(), time.perf_counter()
            read()
            b = best[name]
            b["cpu_s"], b["wall_s"] = min(b["cpu_s"], time.process_time() - c0), min(b["wall_s"], time.perf_counter() - w0)
    best.update(reader_stages(buf, path.name, args.repeat))
    print(f"{args.rounds} decisions, {len(buf):,} bytes; best of {args.repeat}")
    for name, b in best.items():
        print(f"{name:<40} cpu {b['cpu_s']:.3f} s  wall {b['wall_s']:.3f} s  {args.rounds / b['cpu_s']:>9,.0f} decisions/CPU-s")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    out = RESULTS / f"replay-decoders-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(["python -m benchmarks.replay_decoders", *(sys.argv[1:] if argv is None else argv)]),
                               "rounds": args.rounds, "bytes": len(buf), "repeat": args.repeat, "versions": versions,
                               "best_s": best, "python": platform.python_version(),
                               "load_average": list(os.getloadavg())}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
