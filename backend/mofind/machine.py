"""What this machine is, for the measurements MoFind caches per machine (the MaxSim kernel, the text tower's
precision): the CPU's model and flags, the instruction-set overrides in the environment, the library versions
and the thread count. A cached choice is valid only where all of them are the same.
"""

from __future__ import annotations

import hashlib
import os
import platform

#: Environment variables that change which instructions the math libraries use (and so which kernel is fastest):
#: a calibration made without them is not valid with them (e.g. ONEDNN_MAX_CPU_ISA=AVX2 to act as an older CPU).
ISA_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE",
                 "ATEN_CPU_CAPABILITY", "NUMBA_CPU_NAME")


def cpu_description() -> str:
    """The CPU's model name and flags (Linux), else what `platform` knows."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(("model name", "flags")):
                    cpu += line.strip()
                if line.startswith("flags"):
                    break
    except OSError:
        cpu = platform.processor()
    return cpu or platform.machine()


def machine_key(*parts: object) -> str:
    """A short hash of the CPU, the instruction-set overrides, torch's and numpy's versions, torch's thread count
    and the caller's own `parts` (shapes, a format version)."""
    import numpy as np
    import torch

    overrides = ",".join(f"{name}={os.environ[name]}" for name in ISA_VARIABLES if name in os.environ)
    fields = [cpu_description(), overrides, torch.__version__, np.__version__, str(torch.get_num_threads()),
              *map(str, parts)]
    return hashlib.sha256("|".join(fields).encode()).hexdigest()[:20]
