"""The demo, step by step: train offline, serve live through Kafka, score the references, report."""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import ConfigError, Settings
from stream import training
from stream.demo import arms, report
from stream.demo.data import Dataset
from stream.demo.live import EVENTS_PER_RATING, LiveRun
from stream.demo.metrics import percentiles, rmse


class Demo:
    def __init__(self, settings: Settings, dataset: Dataset, *, out_dir: Path, run_id: str,
                 train_fraction: float = 0.5, epochs: int = 3, retrains: int = 10, n_candidates: int = 5,
                 window: int = 10_000, worker_mode: str = "process", progress: bool = True, probe_n: int = 100,
                 text_ratings: int = 0, lsh_arm_bits: int = 0, engine_ratings: int = 0, engine_batch: int = 50,
                 deadline_ms: float = 0.0):
        self.s = settings
        self.ds = dataset
        self.out_dir = out_dir
        self.run_id = run_id
        self.n_train = max(20, int(len(dataset.records) * train_fraction))
        self.opts = training.TrainOptions(epochs=epochs, progress=progress).check()
        self.retrains = retrains
        self.n_candidates = n_candidates
        self.window = window
        self.worker_mode = worker_mode
        self.progress = progress
        self.probe_n = probe_n
        self.text_ratings = text_ratings
        self.lsh_arm_bits = lsh_arm_bits
        self.engine_ratings = engine_ratings
        self.engine_batch = engine_batch
        self.deadline_ms = deadline_ms
        self.served: dict[str, Any] = {}
        self.expensive: dict[str, Any] = {}
        self._created_topics: list[str] = []

    def say(self, msg: str) -> None:
        if self.progress:
            print(msg, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ steps
    def run(self) -> dict[str, Any]:
        from stream.kafka_io import ensure_topics
        from stream.store import open_registry

        train, stream = self.ds.records[: self.n_train], self.ds.records[self.n_train :]
        if len(stream) < 10:
            raise ConfigError(f"only {len(stream)} ratings left to stream; use more data or a smaller "
                                       "--train-fraction")
        self._created_topics = ensure_topics(self.s)
        registry = open_registry(self.s)

        self.say(f"[1/4] offline training on the first {len(train)} ratings ({self.opts.epochs} epochs)")
        w0, c0 = time.perf_counter(), time.process_time()
        model = training.train(train, self.opts, version=registry.next_version(), seed=self.s.seed)
        offline = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
                   "val_rmse": model.metrics.get("val_rmse"), "n_val": model.metrics.get("n_val"),
                   "version": model.version}
        training.register(registry, model, {"source": f"demo:{self.ds.source}", "trigger": "demo"})
        training.promote(self.s, registry, model.version)

        self.say(f"[2/4] live: {len(stream)} ratings through Kafka ({self.worker_mode} worker, "
                 f"learner {self.s.learner}, policy {self.s.policy})")
        live, worker_cpu = self._live(stream)

        self.say("[3/4] in-process references on the same stream")
        frozen = arms.frozen_offline(model, stream)
        self.say(f"  (a) frozen offline: RMSE {rmse(frozen.pred, _y(stream)):.4f}")
        every = max(1, -(-len(stream) // (self.retrains + 1)))
        segments: list = []
        retrain = arms.periodic_retrain(model, train, stream, self.opts, every=every, seed=self.s.seed,
                                        progress=self.progress, keep=segments)
        self.say(f"  (c) periodic retrain: RMSE {rmse(retrain.pred, _y(stream)):.4f}")
        outside = [arms.river_biased_mf(train, stream, seed=self.s.seed), arms.river_baseline(train, stream),
                   arms.river_funk_mf(train, stream, seed=self.s.seed), arms.user_mean(train, stream)]
        for letter, arm in zip("defg", outside):
            self.say(f"  ({letter}) {arm.label}: RMSE {rmse(arm.pred, _y(stream)):.4f}")
        expensive = self._expensive_arms(model, train, stream, frozen)
        velox = arms.velox(segments, stream, learner=self.s.learner)
        self.say(f"  {velox.label}: RMSE {rmse(velox.pred, _y(stream)):.4f}, {velox.cpu_s:.1f}s CPU")
        served = self._served_arms(train, stream)

        self.say("[4/4] report")
        hybrid = arms.ArmResult(
            "eddy_live", "Eddy hybrid, online per-user updates (live, Kafka)", live.pred, worker_cpu or float("nan"),
            live.wall_s, f"feature net {model.version} frozen; per-user weights ({self.s.learner}) learned online "
            "by the worker from each feedback; scores read from the prediction events")
        if "deadline_ms" in self.served:  # the live arm's answers against the same deadline
            hybrid.on_time = float(np.mean(live.latency_ms <= self.served["deadline_ms"]))
        all_arms = [frozen, hybrid, retrain, *outside, *expensive, velox, *served]
        return self._report(all_arms, train, stream, offline, live)

    def _expensive_arms(self, model, train: list[dict], stream: list[dict], frozen) -> list[arms.ArmResult]:
        """The text feature net with and without the feature cache (on the first ``text_ratings`` stream
        ratings: uncached, it costs tens of ms a rating on a CPU), and the MLP with a coarsened cache."""
        from dataclasses import replace

        from features.cache import FeatureCache
        from stream.demo.data import with_text

        out = []
        n = min(self.text_ratings, len(stream))
        if n and self.ds.texts:
            self.say(f"  the expensive feature net: text kind (all-MiniLM-L6-v2 + trained head), first {n} ratings")
            w0, c0 = time.perf_counter(), time.process_time()
            text_model = training.train(with_text(train, self.ds.texts),
                                        replace(self.opts, kind="text", item_text="title", progress=False),
                                        version="text", seed=self.s.seed)
            self.expensive["text_training"] = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
                                               "val_rmse": text_model.metrics.get("val_rmse")}
            tstream = with_text(stream, self.ds.texts)
            out.append(arms.cached_net("text", "text feature net, no cache", text_model, tstream, n=n))
            out.append(arms.cached_net("text_cached", "text feature net, feature cache", text_model, tstream, n=n,
                                       cache=FeatureCache(text_model.version, capacity=100_000)))
            self.expensive["frozen_mlp_rmse_same_ratings"] = rmse(frozen.pred[:n], _y(stream)[:n])
        elif self.text_ratings:
            self.say("  the text feature net's arms are skipped: this dataset has no item texts")
        if self.lsh_arm_bits:
            out.append(arms.cached_net(
                "mlp_lsh", f"MLP feature net, cache coarsened to {self.lsh_arm_bits} SimHash bits", model, stream,
                n=len(stream), cache=FeatureCache(model.version, capacity=100_000, lsh_bits=self.lsh_arm_bits)))
        for arm in out:
            self.say(f"  {arm.label}: RMSE {rmse(arm.pred, _y(stream)):.4f} on {arm.extra['scored']} ratings, "
                     f"{arm.cpu_s:.1f}s CPU" + (f", hit rate {arm.extra['hit_rate']:.1%}" if "hit_rate" in arm.extra
                                               else ""))
        self.expensive["arms"] = {a.key: {k: v for k, v in a.extra.items()} for a in out}
        return out

    def _served_arms(self, train: list[dict], stream: list[dict]) -> list[arms.ArmResult]:
        """The serving layer through the worker's engine: an expensive net exact and under a deadline, the
        cascade and model selection (:mod:`stream.demo.served`), on the first ``engine_ratings`` ratings."""
        from stream.demo.served import served_arms

        n = min(self.engine_ratings, len(stream))
        if not n:
            return []
        self.say(f"  the serving layer through the engine: linear and 1024x1024 MLP nets, first {n} ratings")
        out, self.served = served_arms(self.s, train, stream, self.ds.catalog, n=n, batch=self.engine_batch,
                                       epochs=self.opts.epochs, deadline_ms=self.deadline_ms, say=self.say)
        return out

    def _live(self, stream: list[dict]):
        from stream.demo.worker_handle import start_worker

        self.out_dir.mkdir(parents=True, exist_ok=True)
        worker = start_worker(self.worker_mode, self.s, self.out_dir / "worker.log")
        cpu = None
        try:
            driver = LiveRun(self.s, stream, self.ds.catalog, run_id=self.run_id, n_candidates=self.n_candidates,
                             window=self.window, seed=self.s.seed, progress=self.progress, check_worker=worker.check)
            driver.warm_up()
            probe = driver.probe(self.probe_n)
            live = driver.run()
            live.probe_ms = probe
        finally:
            cpu = worker.stop()
        return live, cpu

    def _report(self, all_arms, train, stream, offline, live) -> dict[str, Any]:
        y = _y(stream)
        trained_users = {r["user_id"] for r in train}
        known = np.array([r["user_id"] in trained_users for r in stream])
        dicts = [asdict(a) for a in all_arms]
        rows = report.arm_rows(dicts, y, known)
        if self.served.get("n"):  # the arms that scored every rating, on the serving-layer arms' ratings
            n = self.served["n"]
            self.served["rmse_same_ratings"] = {a.key: rmse(a.pred[:n], y[:n]) for a in all_arms
                                                if np.isfinite(a.pred[:n]).all()}
        by_key = {r["key"]: r["rmse"] for r in rows}
        lat = live.latency_ms[np.isfinite(live.latency_ms)]
        wlat = live.worker_latency_ms[np.isfinite(live.worker_latency_ms)]
        rate = live.answered / live.wall_s if live.wall_s > 0 else 0.0
        summary = {
            "title": f"Eddy demo on {self.ds.source}: prequential RMSE of {len(all_arms)} arms",
            "run_id": self.run_id,
            "data": {"source": self.ds.source, "description": self.ds.description,
                     "fallback_reason": self.ds.fallback_reason},
            "split": {"n_train": len(train), "n_stream": len(stream), "new_user_share": float(1 - known.mean())},
            "offline": offline,
            "training": asdict(self.opts),
            "worker": {"mode": self.worker_mode, "learner": self.s.learner, "policy": self.s.policy,
                       "processing": self.s.processing, "partitions": self.s.partitions,
                       "topic_prefix": self.s.topic_prefix},
            "live": {"worker": self.worker_mode, "wall_s": live.wall_s, "ratings_per_s": rate,
                     "events_per_s": rate * EVENTS_PER_RATING, "latency_ms": percentiles(lat, (50, 90, 99)),
                     "unloaded_latency_ms": percentiles(live.probe_ms, (50, 90, 99)),
                     "worker_latency_ms": percentiles(wlat, (50, 90, 99)), "answered": live.answered,
                     "dead_lettered": live.dead_lettered, "feature_net_versions": live.versions,
                     "candidates": self.n_candidates, "window": self.window},
            "retrains": all_arms[2].extra,
            "expensive_feature_net": self.expensive,
            "serving_layer": self.served,
            # the hybrid's prequential RMSE relative to river's BiasedMF: -0.02 is 2% lower
            "hybrid_vs_biased_mf": by_key["eddy_live"] / by_key["biased_mf"] - 1.0,
        }
        paths = report.write(self.out_dir, rows=rows, arms=dicts, y=y, summary=summary, window=min(2000, len(y)))
        paths["worker.log"] = self.out_dir / "worker.log"
        return {"table": report.table(rows), "rows": rows, "paths": paths, "summary": summary}

    def cleanup(self) -> None:
        """Remove what this run created: its topics, Redis keys and model files."""
        import shutil

        from stream.kafka_io import delete_topics
        from stream.store import RedisStore

        try:
            if self._created_topics:
                delete_topics(self.s, self._created_topics)
            RedisStore.from_settings(self.s).delete_deployment()
            shutil.rmtree(self.s.model_dir, ignore_errors=True)
        except Exception as exc:  # noqa: BLE001 - clean-up is best effort; say what was left
            print(f"clean-up incomplete ({exc}); topics {self.s.topic_prefix}* may remain", file=sys.stderr)


def _y(records: list[dict]) -> np.ndarray:
    return np.array([r["reward"] for r in records], dtype=float)
