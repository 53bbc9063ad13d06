"""linalg: numpy's BLAS held to one thread per product, or once for the whole process."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

from mofind.index import linalg

pytest.importorskip("threadpoolctl")


def test_a_process_wide_limit_of_one_thread_makes_per_product_limits_free_until_it_is_restored():
    a, b = np.random.default_rng(0).standard_normal((2, 64, 64))
    per_product = linalg.single_blas_thread()
    assert not isinstance(per_product, nullcontext)  # no process-wide limit yet: each product sets one
    limiter = linalg.limit_blas_threads(1)
    try:
        assert linalg.blas_threads() == 1
        assert isinstance(linalg.single_blas_thread(), nullcontext)
        assert np.array_equal(linalg.matmul(a, b), a @ b)
    finally:
        limiter.restore_original_limits()
    assert not isinstance(linalg.single_blas_thread(), nullcontext)
    with linalg.single_blas_thread():
        assert linalg.blas_threads() == 1


def test_a_process_wide_limit_above_one_keeps_limiting_each_product():
    limiter = linalg.limit_blas_threads(2)
    try:
        with linalg.single_blas_thread():
            assert linalg.blas_threads() == 1
    finally:
        limiter.restore_original_limits()
