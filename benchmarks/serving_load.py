"""A live worker fed MovieLens queries open-loop: what the anytime and cascade benchmarks share.

:func:`models` trains (once, then cached) two real feature nets on the first part of
MovieLens-100K (the demo's data, :mod:`stream.demo.data`): a cheap one and an expensive
one. :func:`run` then deploys one configuration on fresh topics and keys: registers both
nets, makes the expensive one live, starts ``eddy worker`` as a process with the given
settings, and sends ``rate`` queries a second for ``duration_s`` (query ``i`` is
scheduled at ``t0 + i / rate`` and its ``ts`` is that time, so queueing anywhere counts
against its deadline). Each query is one held-out rating: the rated movie among
``n_candidates - 1`` others. A prediction's score for the rated movie is compared with
the rating (RMSE). No feedback is sent: user weights stay the offline ones, so two
configurations differ only in the features and the model that answered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stream import config, events
from stream.client import EddyClient, reader
from stream.config import Settings
from stream.demo.nets import CHEAP, EXPENSIVE, train_net

CACHE = Path(os.environ.get("EDDY_CACHE_DIR", str(Path.home() / ".cache" / "eddy"))) / "bench-models"
RESULTS = Path(__file__).resolve().parent / "results"


def dataset(n_train: int):
    from stream.demo.data import load

    ds = load("movielens")
    return ds, ds.records[:n_train], ds.records[n_train:]


def models(train: list[dict], specs=(CHEAP, EXPENSIVE), say=print):
    """The trained nets, from the cache when these records and specs were trained on before."""
    from features.model import FeatureModel, limit_threads

    limit_threads(1)
    key = hashlib.sha256(json.dumps([len(train), train[0], train[-1]], sort_keys=True, default=str).encode())
    out = []
    for spec in specs:
        path = CACHE / f"{spec.version}-{'x'.join(map(str, spec.hidden)) or 'linear'}-{spec.output_dim}-" \
                       f"{spec.epochs}-{key.hexdigest()[:12]}"
        if (path / "meta.json").is_file():
            out.append(FeatureModel.load(path, device="cpu"))
            continue
        say(f"training {spec} on {len(train)} ratings (cached in {path})")
        model = train_net(train, spec)
        model.save(path)
        out.append(model)
    return out


def queries(test: list[dict], catalog: list[dict], n: int, n_candidates: int, seed: int = 0):
    """``(user, context, candidates, rated item id, rating)`` of the first ``n`` held-out ratings."""
    items = [events.Item(c["id"], c.get("features") or {}) for c in catalog]
    out = []
    for i, r in enumerate(test[:n]):
        rng = np.random.default_rng([seed, i])
        rated = events.Item(r["item"]["id"], r["item"].get("features") or {})
        others = [items[j] for j in rng.choice(len(items), size=n_candidates + 1, replace=False)
                  if items[j].id != rated.id][: n_candidates - 1]
        cands = [rated, *others]
        rng.shuffle(cands)
        out.append((r["user_id"], r["context"], tuple(cands), rated.id, float(r["reward"])))
    return out


def offline_scores(model, qs) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per query, under the offline user weights (the worker's, as no feedback is sent): the rated
    movie's score, and every candidate's."""
    every = [np.asarray(model.predict(user, ctx, [c.to_dict() for c in cands])) for user, ctx, cands, _, _ in qs]
    rated = np.array([s[[c.id for c in q[2]].index(q[3])] for q, s in zip(qs, every)])
    return rated, every


def write_results(out: dict, plot, table) -> Path:
    """``benchmarks/results/<benchmark>-<started>.json``, its ``plot(out, path)`` beside it as ``.png``;
    prints ``table(out)`` and where both went."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{out['benchmark']}-{out['started']}.json"
    path.write_text(json.dumps(out, indent=1))
    plot(out, path.with_suffix(".png"))
    print(table(out))
    print(f"wrote {path} and {path.with_suffix('.png').name}")
    return path


def net_summary(model) -> dict:
    """A feature net as a result file describes it."""
    return {"hidden": list(model.config.hidden), "output_dim": model.output_dim,
            "val_rmse": model.metrics.get("val_rmse")}


def result_header(benchmark: str, args, dataset_source: str) -> dict:
    """What every result file of these benchmarks starts with: which, when, where, how and on what."""
    return {"benchmark": benchmark, "started": dt.datetime.now().strftime("%Y%m%dT%H%M%S"),
            "machine": platform.platform(), "args": vars(args), "dataset": dataset_source}

@dataclass
class Answer:
    latency_ms: float
    score: float
    rating: float
    approximated: int
    version: str
    worker_ms: float  # the prediction's latency_ms: its batch's time inside the worker


def run(base: Settings, nets, qs, *, rate: float, duration_s: float, deadline_ms: float | None,
        overrides: dict, drain_s: float = 20.0, say=print) -> dict:
    """One configuration, live. ``deadline_ms`` is what counts as on time (and what the queries ask for
    when ``overrides`` sets the worker's ``deadline_ms``). Returns the step's figures and the answers."""
    from stream.kafka_io import delete_topics, ensure_topics
    from stream.store import open_registry, redis_client

    prefix = f"b{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory() as tmp:
        s = replace(base, topic_prefix=prefix, group=f"{prefix}workers", instance_id="bench-0", model_dir=tmp,
                    metrics_port=0, **{k: v for k, v in overrides.items()})
        topics = ensure_topics(s)
        registry = open_registry(s)
        for m in nets:
            registry.register(m, {"source": "benchmark"})
        registry.promote(nets[-1].version)
        log = open(Path(tmp) / "worker.log", "wb")
        worker = subprocess.Popen([sys.executable, "-m", "stream.cli", "worker"], env=config.child_environment(s),
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            return _drive(s, worker, qs, rate=rate, duration_s=duration_s, deadline_ms=deadline_ms,
                          drain_s=drain_s)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
            log.close()
            delete_topics(s, topics)
            r = redis_client(s)
            keys = list(r.scan_iter(f"{prefix}*", count=1000))
            for i in range(0, len(keys), 500):
                r.delete(*keys[i:i + 500])


def _drive(s: Settings, worker, qs, *, rate: float, duration_s: float, deadline_ms: float | None,
           drain_s: float) -> dict:
    client = EddyClient(s)
    preds = reader(s, [s.topic("predictions")])
    # warm up: the worker joins its group and loads the nets; one answered query says it is ready
    uid, ctx, cands, _, _ = qs[0]
    client.send(events.Query("warm", uid, time.time(), ctx, cands))
    client.flush()
    t_end = time.monotonic() + 120
    while time.monotonic() < t_end:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode} before answering")
        m = preds.poll(0.5)
        if m is not None and not m.error():
            break
    else:
        raise RuntimeError("the worker did not answer its first query within 120 s")
    n = int(rate * duration_s)
    sent_ts: dict[str, float] = {}
    t0 = time.time() + 0.2

    def send() -> None:
        for i in range(n):
            at = t0 + i / rate
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)  # the load generator's schedule, not the product's
            uid, ctx, cands, _, _ = qs[i % len(qs)]
            rid = f"q{i}"
            sent_ts[rid] = at
            client.send(events.Query(rid, uid, at, ctx, cands))
        client.flush()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answers: dict[int, Answer] = {}
    stop_at = t0 + duration_s + drain_s
    while len(answers) < n and time.time() < stop_at:
        for m in preds.consume(500, 0.1):
            if m.error():
                continue
            now = time.time()
            p = events.decode_prediction(m.value())
            if not p.request_id.startswith("q"):
                continue
            i = int(p.request_id[1:])
            _, _, _, rated, rating = qs[i % len(qs)]
            score = next(r.score for r in p.ranked if r.item_id == rated)
            answers[i] = Answer((now - (t0 + i / rate)) * 1000, score, rating, len(p.approximated),
                                p.feature_net_version, p.latency_ms)
    sender.join(5)
    preds.close()
    return summarize(answers, n, rate=rate, duration_s=duration_s, deadline_ms=deadline_ms)


def summarize(answers: dict[int, Answer], n: int, *, rate: float, duration_s: float,
              deadline_ms: float | None) -> dict:
    lat = np.array([answers[i].latency_ms if i in answers else np.inf for i in range(n)])
    got = [answers[i] for i in sorted(answers)]
    err = np.array([a.score - a.rating for a in got])
    versions: dict[str, int] = {}
    for a in got:
        versions[a.version] = versions.get(a.version, 0) + 1
    finite = lat[np.isfinite(lat)]
    inside = np.array([a.worker_ms for a in got])
    return {
        "rate": rate, "duration_s": duration_s, "sent": n, "answered": len(got),
        "on_time": None if deadline_ms is None else float(np.mean(lat <= deadline_ms)),
        "p50_ms": float(np.percentile(lat, 50)) if len(finite) else None,
        "p99_ms": float(np.percentile(lat, 99)) if np.isfinite(np.percentile(lat, 99)) else None,
        "worker_p50_ms": float(np.percentile(inside, 50)) if len(inside) else None,
        "worker_p99_ms": float(np.percentile(inside, 99)) if len(inside) else None,
        "load_average_1m": os.getloadavg()[0],  # the machine is shared: read every latency with this
        "rmse": float(np.sqrt(np.mean(err ** 2))) if len(err) else None,
        "approximated_queries": float(np.mean([a.approximated > 0 for a in got])) if got else None,
        "approximated_candidates": float(np.sum([a.approximated for a in got])) if got else None,
        "versions": versions,
        "scores": {i: answers[i].score for i in sorted(answers)},
    }
