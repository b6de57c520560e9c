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
