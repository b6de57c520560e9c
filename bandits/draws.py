"""Each seed's first uniform draw, ``np.random.default_rng(seed).random()``, for many seeds at once.

A decision is drawn with ``default_rng(seed)`` from a seed logged with it, so anyone can
draw it again. Building a generator costs about 9 us (numpy's :class:`~numpy.random.SeedSequence`
hashes the seed into PCG64's 256-bit state, and three objects are built around it), a tenth
of the engine's whole cost per query. The hash is plain 32-bit and 128-bit integer
arithmetic, so here it runs once for the batch: SeedSequence's mixing in numpy ``uint32``
columns (its hash constants do not depend on the data), then PCG64's seeding steps and
first output in Python integers, about 1.3 us a seed for 256 of them. Below
:data:`VECTOR_FROM` seeds numpy's own generators are cheaper, and are used.

The algorithms are numpy's, whose ``SeedSequence`` and ``PCG64`` streams are kept the same
across releases; unit tests compare this with ``default_rng`` (and the hashed state with
``SeedSequence``) on every kind of seed, so a numpy that changed either would fail them.

>>> import numpy as np
>>> seeds = [0, 7, 2**32, 2**63 - 1] * 8
>>> first_uniforms(seeds).tolist() == [np.random.default_rng(s).random() for s in seeds]
True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["VECTOR_FROM", "first_uniforms"]

VECTOR_FROM = 16
"""Batches of at least this many seeds take the vectorised path (measured: equal cost near 16)."""

_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
_MASK128 = (1 << 128) - 1
# SeedSequence (numpy/random/bit_generator.pyx) and PCG64 (numpy/random/src/pcg64) constants.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_MULT_L, _MIX_MULT_R = np.uint32(0xCA01F9DD), np.uint32(0x4973F715)
_PCG_MULT = (2549297995355413924 << 64) | 4865540595714422341
_POOL = 4  # SeedSequence's pool size, in 32-bit words
_SHIFT = np.uint32(16)


def _hash_constants() -> tuple[list[np.uint32], list[tuple[np.uint32, np.uint32]]]:
    """The constants SeedSequence XORs and multiplies by: ``hashmix``'s sequence (the pool's 4 words,
    then 12 mixing steps), and ``generate_state``'s (8 output words: PCG64 takes 4 of 64 bits)."""
    a, mix = _INIT_A, []
    for _ in range(_POOL * _POOL):  # one per pool word, then one per (source, other word) pair: 4 + 12
        xor = a
        a = (a * _MULT_A) & _MASK32
        mix.append((np.uint32(xor), np.uint32(a)))
    b, out = _INIT_B, []
    for _ in range(2 * _POOL):
        xor = b
        b = (b * _MULT_B) & _MASK32
        out.append((np.uint32(xor), np.uint32(b)))
    return mix, out


_HASHMIX, _GENERATE = _hash_constants()


def _hashmix(value: np.ndarray, constants: tuple[np.uint32, np.uint32]) -> np.ndarray:
    xor, mult = constants
    value = (value ^ xor) * mult
    return value ^ (value >> _SHIFT)


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = _MIX_MULT_L * x - _MIX_MULT_R * y
    return r ^ (r >> _SHIFT)


def _pcg64_states(seeds: np.ndarray, constants: tuple[list, list] | None = None) -> list[tuple[int, int, int, int]]:
    """Each seed's ``SeedSequence(seed).generate_state(4, uint64)``, as four Python ints.

    A seed below 2**64 is at most two 32-bit words of entropy; SeedSequence hashes zeros
    into the rest of its pool, which is what a high word of 0 hashes to as well.
    ``constants``: :func:`_hash_constants`' (default: computed once, at import).
    """
    hashmix_constants, generate_constants = constants or (_HASHMIX, _GENERATE)
    low = (seeds & np.uint64(_MASK32)).astype(np.uint32)
    high = (seeds >> np.uint64(32)).astype(np.uint32)
    zero = np.zeros(1, dtype=np.uint32)  # the same hash for every seed: one word, broadcast (an array: no overflow warnings)
    hashes = iter(hashmix_constants)
    pool = [_hashmix(word, next(hashes)) for word in (low, high, zero, zero)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = _mix(pool[dst], _hashmix(pool[src], next(hashes)))
    words = [_hashmix(pool[i % _POOL], c) for i, c in enumerate(generate_constants)]
    # Little-endian pairs of 32-bit words make the 64-bit words.
    state = [(words[2 * k].astype(np.uint64) | (words[2 * k + 1].astype(np.uint64) << np.uint64(32))).tolist()
             for k in range(len(words) // 2)]
    return list(zip(*state))


def _pcg64_first_double(s0: int, s1: int, s2: int, s3: int) -> float:
    """PCG64 seeded with ``[s0, s1, s2, s3]`` (its state ``s0:s1``, its stream ``s2:s3``): the first
    ``random()`` (XSL-RR output of the stepped state, its top 53 bits over 2**53)."""
    inc = ((((s2 << 64) | s3) << 1) | 1) & _MASK128
    state = (inc + ((s0 << 64) | s1)) & _MASK128  # srandom: state 0, step (0 * mult + inc), add the seed
    state = (state * _PCG_MULT + inc) & _MASK128  # srandom's second step
    state = (state * _PCG_MULT + inc) & _MASK128  # the draw's step
    x = ((state >> 64) ^ state) & _MASK64
    rot = state >> 122
    out = ((x >> rot) | (x << ((-rot) & 63))) & _MASK64
    return (out >> 11) * 2.0**-53


def first_uniforms(seeds: Sequence[int]) -> np.ndarray:
    """``[np.random.default_rng(s).random() for s in seeds]`` as a float64 array; seeds in [0, 2**64)."""
    if len(seeds) < VECTOR_FROM:
        return np.fromiter((np.random.default_rng(s).random() for s in seeds), dtype=np.float64)
    s = np.asarray(seeds, dtype=np.uint64)
    return np.fromiter((_pcg64_first_double(*st) for st in _pcg64_states(s)), dtype=np.float64)
