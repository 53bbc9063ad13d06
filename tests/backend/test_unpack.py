"""Unpacking stored codes: the compiled loop (numba) gives exactly numpy's reference levels, gathered or not."""

from __future__ import annotations

import numpy as np
import pytest

from mofind.index import unpack
from mofind.index.codec import RotatedCodec


def test_the_compiled_unpacking_is_in_use():
    assert unpack.compiled(), "numba is a requirement (requirements.txt): the search would unpack 3x slower"


@pytest.mark.parametrize("bits", [4, 5])
@pytest.mark.parametrize("dim", [128, 64, 32, 8])
def test_compiled_levels_equal_the_numpy_reference(bits, dim):
    codec = RotatedCodec.create(dim, seed=3, bits=bits)
    rng = np.random.default_rng(dim + bits)
    packed = rng.integers(0, 256, (3000, codec.bytes_per_vector), dtype=np.uint8)  # every bit pattern occurs
    reference = unpack.levels_numpy(packed, dim, bits)
    assert reference.max() == 2 ** bits - 1 and reference.min() == 0
    assert np.array_equal(unpack.levels(packed, dim, bits), reference)
    assert np.array_equal(codec.levels(packed).view(np.uint8), reference)
    # a strided view (not the compiled loop's layout) unpacks the same
    assert np.array_equal(unpack.levels(packed[::2], dim, bits), reference[::2])


@pytest.mark.parametrize("bits", [4, 5])
def test_gathered_levels_read_the_rows_where_they_lie(bits):
    codec = RotatedCodec.create(128, seed=1, bits=bits)
    rng = np.random.default_rng(bits)
    vectors = rng.standard_normal((400, 128)).astype(np.float32)
    packed = codec.encode(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    starts = np.array([384, 0, 32, 32, 200])  # any order, repeats, up to the last row
    got = codec.gathered_levels(packed, starts, 16)
    rows = (starts[:, None] + np.arange(16)).reshape(-1)
    assert got.shape == (len(starts) * 16, 128) and got.dtype == np.int8
    assert np.array_equal(got, codec.levels(packed[rows]))
    assert len(codec.gathered_levels(packed, np.zeros(0, np.int64), 16)) == 0
    with pytest.raises(IndexError, match="outside the 400 stored rows"):  # never a read past the codes
        codec.gathered_levels(packed, np.array([390]), 16)
