"""The shared input checks and the byte codec, called directly: boundaries, and the exact
messages a caller sees (each names the parameter, the bad value and where it is)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learners import BayesianLinearUserModel, LearnerError, RiverUserModel, _codec, all_finite
from learners._checks import (MAX_DIM, check_dim, check_matrix, check_positive, check_prior_mean, check_target,
                              check_vector)
from learners._codec import Kind

pytestmark = pytest.mark.unit


def framed(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_vector(["a", "b"], 2), "x must be a numeric array, got dtype <U1 (list)"),
        (lambda: check_matrix("ab", 2), "X must be a numeric array, got dtype <U2 (str)"),
        (lambda: check_vector(np.array([1.0, np.nan, 2.0]), 3), "x must be finite, got nan at index 1"),
        (lambda: check_matrix(np.array([[0.0, 1.0], [np.inf, 2.0]]), 2), "X must be finite, got inf at index (1, 0)"),
        (lambda: check_matrix(np.ones(3), 3, name="W"), "W must have shape (n, 3), got (3,)"),
        (lambda: check_positive("lr", 0.0), "lr must be a finite number > 0, got 0.0"),
        (lambda: check_positive("l2", -1.0, allow_zero=True), "l2 must be a finite number >= 0, got -1.0"),
        (
            lambda: check_prior_mean(np.zeros(3), 3),
            "prior_mean must have shape (4,) (dim weights, then the bias), got (3,)",
        ),
        (lambda: check_dim(MAX_DIM + 1), f"dim must be an int in [1, {MAX_DIM}], got {MAX_DIM + 1}"),
        (lambda: _codec.decode("text"), "data must be bytes, got str"),
        # one byte is too short for anything, but its version is already wrong: say that
        (lambda: _codec.decode(b"\x07"), "data has format version 7, this build reads version 1"),
        (
            lambda: _codec.encode(Kind.BAYES, 2, 0, np.array([np.nan])),
            "model state is not finite (a diverged bayes model?), refusing to serialise it",
        ),
        (
            lambda: _codec.check_length(np.zeros(3), 5, Kind.RIVER, 2),
            "data holds 3 float64 values, a river model of dim 2 needs 5",
        ),
        (
            lambda: _codec.decode(framed(struct.pack("<BBHQ", 1, Kind.RIVER, 0, 0) + np.zeros(2).tobytes())),
            f"data has dim 0, expected 1..{MAX_DIM}",
        ),
        (
            lambda: BayesianLinearUserModel(2).sample_weights(np.random.RandomState(0)),
            "rng must be a numpy.random.Generator, got RandomState",
        ),
    ],
)
def test_messages(call, message):
    with pytest.raises(LearnerError) as info:
        call()
    assert str(info.value) == message


def test_dim_bounds_are_inclusive():
    assert check_dim(1) == 1
    assert check_dim(MAX_DIM) == MAX_DIM
    # the header's uint16 holds MAX_DIM; decode accepts it (the payload length is the class's check)
    kind, dim, n_obs, payload = _codec.decode(_codec.encode(Kind.RIVER, MAX_DIM, 7, np.zeros(1)))
    assert (kind, dim, n_obs, payload.tolist()) == (Kind.RIVER, MAX_DIM, 7, [0.0])


def test_an_empty_payload_decodes():
    # header + CRC alone is well-formed; the length check of the class then says what is missing
    data = _codec.encode(Kind.RIVER, 3, 0, np.empty(0))
    assert _codec.decode(data)[3].size == 0
    with pytest.raises(LearnerError, match=r"^data holds 0 float64 values, a river model of dim 3 needs 8$"):
        RiverUserModel.from_bytes(data)


def test_check_vector_returns_float64_without_copying_float64_input():
    x = np.arange(3.0)
    assert check_vector(x, 3) is x
    ints = check_vector([1, 2, 3], 3)
    assert ints.dtype == np.float64 and ints.tolist() == [1.0, 2.0, 3.0]


_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e154, 1e200, -1e300, 5e-324])


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(_floats, min_size=0, max_size=12), st.sampled_from(["1d", "2d", "strided"]))
def test_all_finite_agrees_with_numpy_whatever_the_magnitudes_and_layout(values, layout):
    """The sum-of-squares shortcut must never call an array finite that is not, nor refuse one whose
    entries are all finite but whose squares overflow (1e200)."""
    a = np.array(values, dtype=np.float64)
    if layout == "2d" and a.size % 2 == 0:
        a = a.reshape(2, -1)
    elif layout == "strided":
        a = np.repeat(a, 2)[::2]  # a view that is not contiguous
    assert all_finite(a) == bool(np.isfinite(a).all())


def test_check_target_takes_floats_and_other_reals_and_refuses_non_finite_ones():
    assert check_target(2.5) == 2.5 and type(check_target(np.float32(2.5))) is float and check_target(True) == 1.0
    for bad in (float("nan"), float("inf"), np.float64("-inf")):
        with pytest.raises(LearnerError, match="y must be a finite real number"):
            check_target(bad)
