"""Matrix products that stay fast next to torch: numpy's BLAS limited to one thread.

Why: once torch has run a parallel region, its OpenMP threads keep spinning for a while; OpenBLAS then
starts its own threads on the same cores and both pools wait on each other. On a 2-core machine a
(168 x 128) @ (128 x 128) product went from 0.1 ms to 12 ms after `import torch`. The matrices the index
multiplies in numpy are small, so one BLAS thread is never slower and is immune to that contention.
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # without threadpoolctl the product still works, just unprotected
        return None
    return ThreadpoolController()


def single_blas_thread():
    """Context manager: numpy's BLAS uses one thread inside it.

    Nothing to do where the whole process is already held to one (`limit_blas_threads(1)`, the server): asking
    threadpoolctl costs ~80 us a call (it lists the libraries and sets each one's threads, then restores them),
    and a 10k-window search made about ten such calls (AMD EPYC, 2 vCPUs)."""
    controller = _controller()
    if controller is None or _process_limit[0] == 1:
        return nullcontext()
    return controller.limit(limits=1, user_api="blas")


class _ProcessLimit:
    """threadpoolctl's limiter for the whole process; its restore also ends `single_blas_thread`'s shortcut."""

    def __init__(self, limiter):
        self._limiter = limiter

    def restore_original_limits(self) -> None:
        self._limiter.restore_original_limits()
        _process_limit[0] = None


_process_limit: list[int | None] = [None]  # the count of the process-wide limit in force, None when there is none


def limit_blas_threads(count: int):
    """Process-wide: numpy's BLAS uses at most `count` threads from now on (`mofind serve --threads`).

    Every numpy product a server request makes (name fusion, match quality, kernels) then stays clear of the
    contention above, not only the ones wrapped in `single_blas_thread`. Returns a limiter whose
    `restore_original_limits()` undoes it (None without threadpoolctl).
    """
    controller = _controller()
    if controller is None:
        return None
    count = max(1, int(count))
    limiter = _ProcessLimit(controller.limit(limits=count, user_api="blas"))
    _process_limit[0] = count
    return limiter


def blas_threads() -> int | None:
    """Threads numpy's BLAS uses now (the largest over its libraries; None when threadpoolctl cannot tell)."""
    controller = _controller()
    counts = [info["num_threads"] for info in controller.info() if info.get("user_api") == "blas"] \
        if controller is not None else []
    return max(counts) if counts else None


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`a @ b` with a single BLAS thread (see the module docstring)."""
    with single_blas_thread():
        return np.asarray(a) @ np.asarray(b)
