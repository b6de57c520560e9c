"""Offline training of the feature net jointly with per-user weights.

The objective is the hybrid model the online side serves (Velox), with the
ALS-style ridge penalty on both factors::

    sum_examples (r - w_u . f(x, item; theta) - b_u)^2
        + lam * sum_users |[w_u, b_u] - m0|^2 + lam * sum_items |f|^2

(each example's ``|f|^2`` counts ``1/n_item``, so every item counts once;
``m0`` is the population mean, the average user, Velox's prior for a new
user). It is minimised by block coordinate descent:

1. given ``f``, every user's ``(w_u, b_u)`` is solved in closed form: the
   ridge regression over ``[f, 1]`` with prior mean ``m0`` and precision
   ``lam``, i.e. exactly what the online Bayesian learners
   (``learners.ridge``, ``learners.rls``) compute from the same examples and
   the same lambda, with ``m0`` solved jointly as the average of the users'
   solutions (a hierarchical prior: shrinking towards 0 instead left the
   average user a poor prediction for newcomers, 1.099 against 1.073 RMSE on
   the demo's first ratings of new users);
2. given the users, one epoch of minibatch Adam on ``theta`` (lazy
   :class:`torch.optim.SparseAdam` for the hashed embedding tables, so a
   step costs what the batch touches, not the table size);

and repeat, ending with a user solve, so the saved offline user weights are
consistent with the saved net. Online, only ``w_u, b_u`` move.

Plain joint SGD on ``theta`` and ``w_u`` crawls out of the factorisation
saddle (ALS-like alternation converges in a few sweeps), and a penalty on
``w_u`` alone is dodged by the MLP scaling ``f`` up; hence both choices.

The last ``val_fraction`` of the examples, in the order given, is held out:
pass time-ordered data and the validation metrics are an honest forecast
(users first seen in that tail are scored with the mean user, as a new user
is served online).

>>> import random
>>> rng = random.Random(0)
>>> ex = [(f"u{rng.randrange(5)}", {"x": rng.random()}, {"id": f"i{rng.randrange(5)}"}, rng.random())
...       for _ in range(200)]
>>> m = train_feature_net(ex, epochs=2, batch_size=64, progress=False, device="cpu")
>>> sorted(m.metrics)[:4], m.embed({"x": 0.5}, [{"id": "i1"}]).shape
(['baseline_val_rmse', 'device', 'epochs', 'history'], (1, 16))
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from features.config import FeatureNetConfig
from features.encoder import EncodedBatch, FeatureEncoder
from features.errors import FeatureError
from features.model import FeatureModel
from features.net import FeatureNet, resolve_device
from features.text import encode_item_texts, encoder_identity

__all__ = ["Example", "examples_from_records", "train_feature_net"]

#: ``(user_id, context, item, reward)``
Example = tuple[str, Mapping[str, Any], Mapping[str, Any], float]

_EVAL_CHUNK = 65_536


def examples_from_records(
    records: Iterable[Mapping[str, Any]],
    *,
    user_key: str = "user_id",
    context_key: str = "context",
    item_key: str = "item",
    reward_key: str = "reward",
) -> list[Example]:
    """``(user_id, context, item, reward)`` tuples from dict records (e.g. joined events).

    A missing context is ``{}``; a missing user, item or reward is an error.

    >>> examples_from_records([{"user_id": "u1", "item": {"id": "a"}, "reward": 1}])
    [('u1', {}, {'id': 'a'}, 1.0)]
    """
    out: list[Example] = []
    for i, r in enumerate(records):
        if not isinstance(r, Mapping):
            raise FeatureError(f"records[{i}] must be a dict, got {r!r}")
        try:
            user, item, reward = r[user_key], r[item_key], r[reward_key]
        except KeyError as exc:
            raise FeatureError(f"records[{i}] has no {exc.args[0]!r} key") from None
        context = r.get(context_key)
        out.append((user, {} if context is None else context, item, reward))
    return [_check_example(i, e) for i, e in enumerate(out)]


def _check_example(i: int, example: Any) -> Example:
    try:
        user, context, item, reward = example
    except (TypeError, ValueError):
        raise FeatureError(f"examples[{i}] must be (user_id, context, item, reward), got {example!r}") from None
    if isinstance(user, bool) or not isinstance(user, (str, int)):
        raise FeatureError(f"examples[{i}] user_id must be a string, got {user!r}")
    if not isinstance(context, Mapping):
        raise FeatureError(f"examples[{i}] context must be a dict, got {context!r}")
    if not isinstance(item, Mapping) or "id" not in item:
        raise FeatureError(f"examples[{i}] item must be a dict with an 'id', got {item!r}")
    if isinstance(reward, bool) or not isinstance(reward, numbers.Real) or not math.isfinite(reward):
        raise FeatureError(f"examples[{i}] reward must be a finite number, got {reward!r}")
    return (str(user), context, item, float(reward))


class _Hybrid(nn.Module):
    """``w_u . f + b_u`` over a FeatureNet, users held as buffers and solved in closed form.

    Row ``n_users`` of ``W``/``b`` is the mean user, used for users unseen in training.
    """

    def __init__(self, net: FeatureNet, n_users: int, global_bias: float) -> None:
        super().__init__()
        self.net = net
        self.g = global_bias
        self.register_buffer("W", torch.zeros(n_users + 1, net.config.output_dim))
        self.register_buffer("b", torch.full((n_users + 1,), float(global_bias)))
        self.register_buffer("m0", torch.zeros(net.config.output_dim + 1))

    def forward(self, batch: EncodedBatch, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions ``(B,)`` and the net's output ``f`` ``(B, d)``."""
        f = self.net(batch)
        return (self.W[users] * f).sum(-1) + self.b[users], f

    @torch.no_grad()
    def solve_users(self, encoded: EncodedBatch, users: torch.Tensor, rewards: torch.Tensor, n: int, lam: float) -> None:
        """Set every ``(w_u, b_u)`` to its ridge solution given the current ``f`` on rows ``[0, n)``.

        Per user, over ``x~ = [f, 1]``: ``(lam I + sum x~ x~^T)^-1 (lam m0 + sum x~ y)``
        with the population's prior mean ``m0``, the average of the solutions
        (row ``n_users``) — the online ridge learner's update from the
        population prior, batched over all users (one ``(d+1) x (d+1)`` solve each).
        """
        n_users, d = self.W.shape[0] - 1, self.W.shape[1]
        dev = self.W.device
        A = torch.zeros(n_users, d + 1, d + 1, device=dev)
        r = torch.zeros(n_users, d + 1, device=dev)
        was_training = self.net.training
        self.net.eval()
        for start in range(0, n, _EVAL_CHUNK):
            rows = torch.arange(start, min(start + _EVAL_CHUNK, n), device=dev)
            f = self.net(encoded.take(rows))
            x = torch.cat([f, torch.ones(len(rows), 1, device=dev)], dim=1)
            A.index_add_(0, users[rows], x[:, :, None] * x[:, None, :])
            r.index_add_(0, users[rows], x * (rewards[rows] - self.g)[:, None])
        self.net.train(was_training)
        A += lam * torch.eye(d + 1, device=dev)
        if not n_users:
            return
        # The prior mean m0 is the population's: the average user, found with the users.
        # It is the fixed point m0 = mean_u(A_u^-1 (lam m0 + r_u)), a (d+1)-sized linear system:
        # (I - lam mean_u A_u^-1) m0 = mean_u A_u^-1 r_u, the GLS estimate of the users' mean. That
        # system is near-singular along directions where every user has little data (lam A_u^-1 ~ I):
        # unregularised, m0 blows up there (weights of +-17 on 0/1 clicks with 60 examples a user).
        # So m0 gets a hyperprior N(0, (1/lam) I), as strong as one user's prior: the identity's
        # weight grows by 1/n_users. With many users (MovieLens: 943) it barely moves m0.
        # Shrinking towards 0 instead, as plain ridge does, makes the average user a poor predictor
        # for a new user, whose predictions rest on it alone until their first ratings arrive.
        A_inv = torch.linalg.inv(A)
        eye = torch.eye(d + 1, device=dev)
        m0 = torch.linalg.solve(eye * (1 + 1 / n_users) - lam * A_inv.mean(0),
                                (A_inv @ r.unsqueeze(-1)).squeeze(-1).mean(0))
        sol = (A_inv @ (r + lam * m0).unsqueeze(-1)).squeeze(-1)
        self.m0 = m0
        self.W[:n_users] = sol[:, :d]
        self.b[:n_users] = sol[:, d] + self.g
        self.W[n_users] = m0[:d]
        self.b[n_users] = m0[d] + self.g

    def optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        sparse = [m.weight for m in self.net.modules() if isinstance(m, nn.Embedding)]
        ids = {id(p) for p in sparse}
        dense = [p for p in self.net.parameters() if id(p) not in ids]
        return [opt for opt in (torch.optim.SparseAdam(sparse, lr=lr) if sparse else None,
                                torch.optim.Adam(dense, lr=lr)) if opt is not None]


def train_feature_net(
    examples: Sequence[Example],
    config: FeatureNetConfig | None = None,
    *,
    epochs: int = 5,
    batch_size: int = 512,
    lr: float = 1e-2,
    weight_decay: float = 5.0,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    version: str = "v1",
) -> FeatureModel:
    """Train ``f`` and the per-user weights on time-ordered ``examples``.

    Parameters
    ----------
    examples:
        ``(user_id, context, item, reward)`` in time order.
    config:
        Net config; ``None`` infers the fields from the training part
        (:meth:`FeatureNetConfig.infer`) with default sizes.
    epochs, batch_size, lr:
        Adam schedule of ``theta``; users are re-solved after each epoch.
    weight_decay:
        Ridge strength ``lam`` (> 0) of the objective above, in "observations'
        worth" as the online learner's ``prior_precision``: users with few
        examples are shrunk more towards ``w = 0, b = g``. Too large a value
        collapses ``f`` to 0 (only biases remain); sparse data (few examples
        per user) wants more than dense data.
    val_fraction:
        Share of the examples, taken from the end, held out for validation;
        in ``[0, 1)``. With 0 the validation metrics are ``None``.
    seed:
        Seeds initialisation, shuffling and dropout (the caller's global
        RNG state is left untouched); runs repeat exactly on CPU.
    device:
        ``None`` picks CUDA when available, else CPU.
    progress:
        Show a tqdm bar per epoch on stderr with the running loss.
    version:
        Version label of the returned model.

    Returns
    -------
    FeatureModel
        With ``metrics`` = train_rmse, val_rmse, val_mae, baseline_val_rmse
        (predicting the training mean), epochs, seconds, device, n_train,
        n_val, n_users, history (per-epoch train_loss and val_rmse), and
        ``user_weights`` = ``{user: (w_u, b_u)}`` with the global bias folded
        into ``b_u``.
    """
    t0 = time.perf_counter()
    _check_int("epochs", epochs, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("seed", seed, 0)
    _check_real("lr", lr, lambda v: v > 0, "> 0")
    _check_real("weight_decay", weight_decay, lambda v: v > 0, "> 0")
    _check_real("val_fraction", val_fraction, lambda v: 0 <= v < 1, "in [0, 1)")
    if not isinstance(examples, Sequence):
        examples = list(examples)
    data = [_check_example(i, e) for i, e in enumerate(examples)]
    n = len(data)
    n_val = int(n * val_fraction)
    n_train = n - n_val
    if n_train < 1:
        raise FeatureError(f"examples must hold at least one training example, got {n}")
    if config is None:
        config = FeatureNetConfig.infer(data[:n_train])
    elif not isinstance(config, FeatureNetConfig):
        raise FeatureError(f"config must be a FeatureNetConfig or None, got {type(config).__name__}")
    dev = resolve_device(device)

    users = [e[0] for e in data]
    contexts = [e[1] for e in data]
    items = [e[2] for e in data]
    rewards = torch.tensor([e[3] for e in data], dtype=torch.float32)
    user_ids = list(dict.fromkeys(users[:n_train]))
    index = {u: i for i, u in enumerate(user_ids)}
    n_users = len(user_ids)
    uidx = torch.from_numpy(np.fromiter((index.get(u, n_users) for u in users), dtype=np.int64, count=n))

    item_keys = [str(it["id"]) for it in items[:n_train]]
    item_count = Counter(item_keys)
    item_share = torch.tensor([1.0 / item_count[k] for k in item_keys], dtype=torch.float32).to(dev)

    encoder = FeatureEncoder(config).fit(contexts[:n_train], items[:n_train])
    encoded = encoder.encode_pairs(contexts, items)
    if config.kind == "text":  # the frozen sentence encoder runs once per distinct text, then only the head trains
        encoded = encoded.with_text(encode_item_texts(items, config.item_text, dev, progress=progress))
    encoded = encoded.to(dev)
    rewards, uidx = rewards.to(dev), uidx.to(dev)
    train_mean = float(rewards[:n_train].mean())

    fork_devices = [torch.cuda.current_device() if dev.index is None else dev.index] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model = _Hybrid(FeatureNet(config, sparse=True), n_users, train_mean).to(dev)
        optimizers = model.optimizers(lr)
        shuffler = torch.Generator().manual_seed(seed)
        steps = math.ceil(n_train / batch_size)
        model.solve_users(encoded, uidx, rewards, n_train, weight_decay)
        history = []
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(n_train, generator=shuffler).to(dev)
            total, seen = torch.zeros((), device=dev), 0
            bar = tqdm(
                total=steps, desc=f"epoch {epoch + 1}/{epochs}", file=sys.stderr,
                disable=not progress, leave=True, mininterval=0.5, unit="batch",
            )
            for step in range(steps):
                idx = perm[step * batch_size : (step + 1) * batch_size]
                pred, f = model(encoded.take(idx), uidx[idx])
                mse = torch.mean((pred - rewards[idx]) ** 2)
                l2 = torch.mean((f * f).sum(-1) * item_share[idx])
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                (mse + weight_decay * l2).backward()
                for opt in optimizers:
                    opt.step()
                total += mse.detach() * len(idx)
                seen += len(idx)
                bar.update(1)
                if progress and step % 20 == 19:
                    bar.set_postfix(loss=f"{float(total) / seen:.4f}", refresh=False)
            model.solve_users(encoded, uidx, rewards, n_train, weight_decay)
            train_loss = float(total) / seen
            val_rmse = _rmse(model, encoded, uidx, rewards, n_train, n) if n_val else None
            history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_rmse": val_rmse})
            bar.set_postfix(loss=f"{train_loss:.4f}", val_rmse="-" if val_rmse is None else f"{val_rmse:.4f}")
            bar.close()

    model.eval()
    train_pred = _predict(model, encoded, uidx, 0, n_train)
    metrics: dict[str, Any] = {
        "train_rmse": float(torch.sqrt(torch.mean((train_pred - rewards[:n_train]) ** 2))),
        "val_rmse": None,
        "val_mae": None,
        "baseline_val_rmse": None,
    }
    if n_val:
        err = _predict(model, encoded, uidx, n_train, n) - rewards[n_train:]
        metrics.update(
            val_rmse=float(torch.sqrt(torch.mean(err**2))),
            val_mae=float(torch.mean(err.abs())),
            baseline_val_rmse=float(torch.sqrt(torch.mean((rewards[n_train:] - train_mean) ** 2))),
        )
    metrics.update(
        epochs=epochs, seconds=round(time.perf_counter() - t0, 3), device=str(dev),
        n_train=n_train, n_val=n_val, n_users=n_users, history=history,
    )
    W = model.W[:n_users].cpu().numpy().astype(np.float32)
    b = model.b[:n_users].cpu().numpy()
    user_weights = {u: (W[i].copy(), float(b[i])) for i, u in enumerate(user_ids)}
    meta = {
        "version": version,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "device": str(dev),
        "n_train": n_train,
        "n_val": n_val,
        "seed": seed,
        "kind": config.kind,
        "hyperparameters": {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                            "weight_decay": weight_decay, "val_fraction": val_fraction},
    }
    if config.kind == "text":
        meta["text_encoder"] = encoder_identity()
    if n_users:  # the prior the users were solved towards: a new user's start (FeatureModel.mean_user_weights)
        meta["population_prior"] = {"w": [float(v) for v in model.W[n_users].cpu()],
                                    "b": float(model.b[n_users])}
    for module in model.net.modules():  # serve / fine-tune with ordinary dense gradients
        if isinstance(module, nn.Embedding):
            module.sparse = False
    return FeatureModel(model.net, encoder, version=version, device=dev, metrics=metrics,
                        user_weights=user_weights, meta=meta)


def _predict(model: _Hybrid, encoded: EncodedBatch, uidx: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        parts = []
        for start in range(lo, hi, _EVAL_CHUNK):
            rows = torch.arange(start, min(start + _EVAL_CHUNK, hi), device=uidx.device)
            parts.append(model(encoded.take(rows), uidx[rows])[0])
        out = torch.cat(parts) if parts else torch.zeros(0, device=uidx.device)
    model.train(was_training)
    return out


def _rmse(model: _Hybrid, encoded: EncodedBatch, uidx: torch.Tensor, rewards: torch.Tensor, lo: int, hi: int) -> float:
    return float(torch.sqrt(torch.mean((_predict(model, encoded, uidx, lo, hi) - rewards[lo:hi]) ** 2)))


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise FeatureError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_real(name: str, value: Any, ok, text: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not ok(value):
        raise FeatureError(f"{name} must be a finite number {text}, got {value!r}")
