"""Where the worker's time goes: cProfile stats of one load step, grouped by stage.

The worker runs under ``python -m benchmarks.sut eddy --profile PATH``;
cProfile is switched on for one load step only. Its clock is wall time, so
Kafka calls that wait (``consume`` with nothing to read yet) count their
waiting; shares are of the profiled wall time.
"""

from __future__ import annotations

import pstats
from pathlib import Path

from stream.config import REPO_ROOT

# (stage, file suffix or "~" for C methods, function names)
STAGES = (
    ("Kafka poll: consume() incl. waiting for data", "~", ("<method 'consume' of 'cimpl.Consumer' objects>",)),
    ("decode queries/feedback (JSON -> events)", "stream/events.py", ("decode_query", "decode_feedback")),
    ("feedback: join + learn (_learn)", "stream/engine/batch.py", ("_learn",)),
    ("the batch's point reads: one Redis MGET (prefetch)", "stream/engine/prefetch.py", ("read",)),
    ("user models: cache (misses read with the batch's point reads)", "stream/engine/users.py", ("get_many",)),
    ("feature net forward (embed_many)", "features/model.py", ("embed_many",)),
    ("per-user scoring (predict_many)", "learners/base.py", ("predict_many",)),
    ("exploration policy (decide)", "bandits/base.py", ("decide",)),
    ("encode predictions/decisions (JSON)", "stream/events.py", ("encode",)),
    ("join records (pack)", "stream/engine/joins.py", ("pack",)),
    ("Redis commit: one commit script per batch", "stream/store.py", ("commit",)),
    ("Kafka produce()", "~", ("<method 'produce' of 'cimpl.Producer' objects>",)),
    ("Kafka transaction: begin + send_offsets + commit", "~",
     ("<method 'begin_transaction' of 'cimpl.Producer' objects>",
      "<method 'send_offsets_to_transaction' of 'cimpl.Producer' objects>",
      "<method 'commit_transaction' of 'cimpl.Producer' objects>")),
    ("Kafka flush + offset commit (at_least_once)", "~",
     ("<method 'flush' of 'cimpl.Producer' objects>", "<method 'commit' of 'cimpl.Consumer' objects>")),
    ("whole batch (_handle)", "stream/worker.py", ("_handle",)),
)


def _where(key: tuple) -> str:
    file, line, func = key
    if file == "~":
        return func
    try:
        file = str(Path(file).resolve().relative_to(REPO_ROOT))
    except ValueError:
        parts = Path(file).parts
        file = "/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts else Path(file).name
    return f"{file}:{line}({func})"


def summarize(path: Path, *, wall_s: float, top: int = 25) -> dict:
    """Stage table and top functions by cumulative time; shares are of ``wall_s``, the profiled wall time."""
    raw = pstats.Stats(str(path)).stats  # key -> (primitive calls, total calls, tottime, cumtime, callers)
    total = wall_s
    stages = []
    for label, where, names in STAGES:
        hits = [v for k, v in raw.items() if k[2] in names and (k[0] == "~" if where == "~" else k[0].endswith(where))]
        cum = sum(v[3] for v in hits)
        calls = sum(v[1] for v in hits)
        stages.append({"stage": label, "calls": calls, "cumtime_s": round(cum, 4),
                       "share_of_loop": round(cum / total, 4) if total else None})
    rows = sorted(raw.items(), key=lambda kv: kv[1][3], reverse=True)
    top_rows = []
    for key, (cc, nc, tt, ct, _) in rows:
        name = _where(key)
        if "sut.py" in name or "_lsprof" in name:
            continue
        top_rows.append({"function": name, "ncalls": nc, "tottime_s": round(tt, 4), "cumtime_s": round(ct, 4),
                         "share_of_loop": round(ct / total, 4) if total else None})
        if len(top_rows) >= top:
            break
    return {"profiled_wall_s": round(total, 3), "stages": stages, "top_cumulative": top_rows}
