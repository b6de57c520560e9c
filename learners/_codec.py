"""The compact binary format shared by every serialised learner.

Layout (little-endian, no pickle)::

    offset  size  field
    0       1     format version (FORMAT_VERSION)
    1       1     kind tag (Kind)
    2       2     dim, uint16
    4       8     n_obs, uint64
    12      8*k   payload: k float64 values (hyperparameters, then state)
    12+8k   4     CRC32 of everything before it

Why float64 payloads, not float32: `from_bytes(to_bytes(m))` must be the
identity, so that a model that went through Redis after every event and one
replayed in memory stay bit-identical (reproducible replay). A float32 round
trip would also feed rounding error into every later Sherman-Morrison update.
The CRC turns a flipped or truncated value into an error instead of a
silently wrong user model.
"""

from __future__ import annotations

import enum
import functools
import struct
import zlib

import numpy as np

from learners._checks import MAX_DIM
from learners.errors import LearnerError

FORMAT_VERSION = 1

_HEADER = struct.Struct("<BBHQ")
_CRC = struct.Struct("<I")
_F64 = np.dtype("<f8")
HEADER_SIZE = _HEADER.size


class Kind(enum.IntEnum):
    """Kind tag in the header: which class wrote the bytes."""

    RIVER = 1
    BAYES = 2
    POPULATION = 3
    RLS = 4


def encode(kind: Kind, dim: int, n_obs: int, payload: np.ndarray) -> bytes:
    """Header + float64 payload + CRC32; `LearnerError` if the state is not finite (a diverged model)."""
    payload = np.ascontiguousarray(payload, _F64)
    if not np.isfinite(payload).all():
        raise LearnerError(f"model state is not finite (a diverged {kind.name.lower()} model?), refusing to serialise it")
    body = _HEADER.pack(FORMAT_VERSION, kind, dim, n_obs) + payload.tobytes()
    return body + _CRC.pack(zlib.crc32(body))


def decode(data: object, expected: Kind | None = None) -> tuple[Kind, int, int, np.ndarray]:
    """Check and split `data` into (kind, dim, n_obs, payload (k,) float64 read-only view)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise LearnerError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    minimum = HEADER_SIZE + _CRC.size
    if len(data) >= 1 and data[0] != FORMAT_VERSION:
        raise LearnerError(f"data has format version {data[0]}, this build reads version {FORMAT_VERSION}")
    if len(data) < minimum or (len(data) - minimum) % _F64.itemsize:
        raise LearnerError(f"data is truncated or padded: {len(data)} bytes is not a header, float64s and a CRC")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise LearnerError(f"data is corrupt: CRC32 mismatch over {len(data)} bytes")
    _, tag, dim, n_obs = _HEADER.unpack_from(data)
    try:
        kind = Kind(tag)
    except ValueError:
        raise LearnerError(f"data has unknown kind tag {tag}") from None
    if expected is not None and kind is not expected:
        raise LearnerError(f"data holds a {kind.name.lower()} model, expected {expected.name.lower()}")
    if not 1 <= dim <= MAX_DIM:
        raise LearnerError(f"data has dim {dim}, expected 1..{MAX_DIM}")
    payload = np.frombuffer(data, _F64, offset=HEADER_SIZE, count=(len(data) - minimum) // _F64.itemsize)
    if not np.isfinite(payload).all():
        raise LearnerError("data holds non-finite values")
    return kind, dim, n_obs, payload


def check_length(payload: np.ndarray, expected: int, kind: Kind, dim: int) -> None:
    """The payload length a kind and dim imply."""
    if payload.size != expected:
        raise LearnerError(
            f"data holds {payload.size} float64 values, a {kind.name.lower()} model of dim {dim} needs {expected}"
        )


@functools.lru_cache(maxsize=16)
def triu_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only upper-triangle indices of an (n, n) matrix: symmetric matrices store only these."""
    rows, cols = np.triu_indices(n)
    rows.flags.writeable = cols.flags.writeable = False
    return rows, cols
