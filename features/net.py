"""The feature net ``f(x, item; theta)``: hashed embeddings + numeric -> MLP.

All categorical fields share one hashed embedding table (the field name is
part of the hashed key, so fields do not collide by design); each field's
embedding keeps its own slot in the concatenated input. The item id has its
own table. Row 0 of both tables is "missing" and stays zero.

>>> import torch
>>> from features.config import FeatureNetConfig
>>> from features.encoder import FeatureEncoder
>>> cfg = FeatureNetConfig(context_numeric=("hour",), item_categorical=("genre",),
...                        hash_buckets=64, output_dim=4)
>>> _ = torch.manual_seed(0)
>>> net = FeatureNet(cfg)
>>> batch = FeatureEncoder(cfg).encode({"hour": 3}, [{"id": "a"}, {"id": "b"}])
>>> tuple(net(batch).shape)
(2, 4)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from features.config import FeatureNetConfig
from features.encoder import EncodedBatch
from features.errors import FeatureError

__all__ = ["FeatureNet", "resolve_device"]

#: Std of the initial embedding rows; small so the MLP starts near-linear.
EMBEDDING_INIT_STD = 0.1


def resolve_device(device: torch.device | str | None = None) -> torch.device:
    """``device`` as a :class:`torch.device`; ``None`` picks CUDA when available, else CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise FeatureError(f"device must name a torch device, got {device!r} ({exc})") from None


class FeatureNet(nn.Module):
    """MLP over ``[numeric, categorical embeddings..., item-id embedding]``.

    ``forward(batch)`` maps an :class:`EncodedBatch` of ``B`` rows to ``(B, output_dim)``.
    ``sparse=True`` gives the embedding tables sparse gradients (for
    :class:`torch.optim.SparseAdam`, as training does); it does not change
    the state_dict.
    """

    def __init__(self, config: FeatureNetConfig, *, sparse: bool = False) -> None:
        super().__init__()
        if not isinstance(config, FeatureNetConfig):
            raise FeatureError(f"config must be a FeatureNetConfig, got {type(config).__name__}")
        config.validate()
        self.config = config
        self.categorical = (
            nn.Embedding(config.hash_buckets, config.embedding_dim, padding_idx=0, sparse=sparse)
            if config.n_categorical
            else None
        )
        self.item_id = (
            nn.Embedding(config.hash_buckets, config.item_id_embedding_dim, padding_idx=0, sparse=sparse)
            if config.item_id_embedding_dim
            else None
        )
        layers: list[nn.Module] = []
        width = config.input_dim
        for size in config.hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            width = size
        layers.append(nn.Linear(width, config.output_dim))
        self.mlp = nn.Sequential(*layers)
        for emb in (self.categorical, self.item_id):
            if emb is not None:
                nn.init.normal_(emb.weight, std=EMBEDDING_INIT_STD)
                with torch.no_grad():
                    emb.weight[0].zero_()

    def inputs(self, batch: EncodedBatch) -> torch.Tensor:
        """The MLP's input ``(B, input_dim)``: numeric, then categorical and item-id embeddings."""
        parts = [batch.numeric]
        if self.categorical is not None:
            parts.append(self.categorical(batch.categorical).flatten(1))
        if self.item_id is not None:
            parts.append(self.item_id(batch.item_ids))
        if self.config.kind == "text":
            if batch.text is None:
                raise FeatureError("the text kind's batch has no text encodings")
            parts.append(batch.text)
        return torch.cat(parts, dim=1)

    def forward(self, batch: EncodedBatch) -> torch.Tensor:
        return self.mlp(self.inputs(batch))

    def forward_numpy(self, batch: EncodedBatch) -> np.ndarray | None:
        """:meth:`forward` in eval mode, on CPU, computed by numpy on the parameters' own memory;
        None where it does not apply (training mode, another device, the text kind).

        Why: a served batch is small (a few queries of ten candidates), and there torch's
        per-operator and per-module dispatch is most of the forward pass (CPU time: 68 us against
        numpy's 19 for ten rows, 112 against 84 for 320; ``python -m benchmarks.forward_pass``).
        The arrays are views of the parameters (no copy), so training or ``load_state_dict``
        in place is seen at once; moving the net (``_apply``) drops them.

        >>> from features.config import FeatureNetConfig
        >>> from features.encoder import FeatureEncoder
        >>> cfg = FeatureNetConfig(context_numeric=("hour",), item_categorical=("genre",), hash_buckets=64)
        >>> net = FeatureNet(cfg).eval()
        >>> batch = FeatureEncoder(cfg).encode({"hour": 3}, [{"id": "a", "genre": "x"}, {"id": "b"}])
        >>> with torch.inference_mode():
        ...     expected = net(batch).numpy()
        >>> bool(np.allclose(net.forward_numpy(batch), expected, rtol=1e-5, atol=1e-6))
        True
        """
        if self.training or self.config.kind != "mlp":
            return None
        plan = self.__dict__.get("_numpy_plan")
        if plan is None:
            plan = self.__dict__["_numpy_plan"] = self._plan()
        if plan is False:
            return None
        categorical, item_id, layers = plan
        parts = [batch.numeric.numpy()]
        if categorical is not None:
            looked_up = categorical[batch.categorical.numpy()]  # (B, fields, dim); B may be 0
            parts.append(looked_up.reshape(looked_up.shape[0], looked_up.shape[1] * looked_up.shape[2]))
        if item_id is not None:
            parts.append(item_id[batch.item_ids.numpy()])
        x = np.concatenate(parts, axis=1)
        for weight, bias in layers:
            if weight is None:  # a ReLU
                np.maximum(x, 0.0, out=x)
            else:
                x = x @ weight
                x += bias
        return x

    def _plan(self):
        """(categorical table, item-id table, [(W.T, b) or (None, None) for a ReLU]) as numpy views;
        False if a parameter is off the CPU or the MLP holds a layer this does not know."""
        if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in self.parameters()):
            return False
        layers: list[tuple[np.ndarray | None, np.ndarray | None]] = []
        for layer in self.mlp:
            if isinstance(layer, nn.Linear) and layer.bias is not None:
                layers.append((layer.weight.detach().numpy().T, layer.bias.detach().numpy()))
            elif isinstance(layer, nn.ReLU):
                layers.append((None, None))
            elif not isinstance(layer, nn.Dropout):  # identity in eval mode
                return False
        table = lambda emb: None if emb is None else emb.weight.detach().numpy()  # noqa: E731
        return table(self.categorical), table(self.item_id), layers

    def __getstate__(self):  # a copy (deepcopy, pickle) makes its own views of its own parameters
        state = self.__dict__.copy()
        state.pop("_numpy_plan", None)
        return state

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .half()...: new tensors, so new views
        self.__dict__.pop("_numpy_plan", None)
        return super()._apply(fn, *args, **kwargs)
