"""SimHash: random-projection buckets over dense inputs (Velox's LSH cache coarsening).

``bits`` random hyperplanes through the origin split the input space; a row's
signature is the side of each plane it lies on. Two rows share a signature
with probability ``(1 - angle/pi) ** bits`` (Charikar 2002), so nearby inputs
(in angle) land in the same bucket and reuse one cached feature. The inputs
are the feature net's standardised numeric fields (centred on the training
mean), so the angle is measured from the average input. Fewer bits: coarser
buckets, more cache hits, more approximation.

>>> import numpy as np
>>> h = SimHash(dim=3, bits=8, seed=0)
>>> x = np.array([[1.0, 0.0, 0.0], [1.0, 0.01, 0.0], [-1.0, 0.0, 0.0]])
>>> sig = h.signatures(x)
>>> sig.shape, bool((sig[0] == sig[1]).all()), bool((sig[0] == sig[2]).all())
((3, 1), True, False)
"""

from __future__ import annotations

import numpy as np

from features.errors import FeatureError

__all__ = ["MAX_BITS", "SimHash"]

MAX_BITS = 64


class SimHash:
    """Signatures of ``(B, dim)`` rows as ``(B, ceil(bits / 8))`` uint8, the same for every process with ``seed``."""

    def __init__(self, dim: int, bits: int, *, seed: int = 0) -> None:
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise FeatureError(f"lsh_bits must be an int in [1, {MAX_BITS}], got {bits!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise FeatureError(f"dim must be an int >= 0, got {dim!r}")
        self.dim, self.bits = dim, bits
        self.planes = np.random.default_rng(seed).standard_normal((dim, bits)).astype(np.float32)

    def signatures(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise FeatureError(f"SimHash inputs must have shape (B, {self.dim}), got {x.shape}")
        return np.packbits(np.asarray(x, dtype=np.float32) @ self.planes > 0, axis=1)
