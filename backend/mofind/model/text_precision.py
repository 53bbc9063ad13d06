"""`--text-precision auto`: which arithmetic the text tower runs in on this CPU, chosen by measuring it here.

Why measure: which is fastest depends on the CPU far more than on the arithmetic. With VNNI / AMX (a Xeon,
2 vCPUs) oneDNN's int8 product made a query 2x faster than float32; without VNNI (an AMD EPYC, Zen 3, AVX2) int8
gained only 1.35x and float16 weights through FBGEMM 1.86x, with float32's results (bench/bench_index.py). So
each available precision (`lean_bert.available_precisions`) is timed as a server runs it: one short prompt at a
time, with the caches emptied in between (a search between two queries evicts the tower's weights). The most
exact precision within `TOLERANCE` of the fastest wins (fp32, then fp16, then int8): a few percent of speed is not
worth rounding every input row. The choice is cached per machine (`mofind.machine`) in
`cache_dir()/text-precision.json`, so a server and `mofind query` on one machine encode prompts alike, run after
run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..machine import machine_key

TOLERANCE = 1.1  # a more exact precision within 10 % of the fastest is chosen
ROUNDS = 7
PROMPT_TOKENS = 12  # a typical prompt with [CLS] and [SEP]
EVICT_BYTES = 64 << 20  # more than the last-level cache of the machines measured (32 MB on the EPYC)
VERSION = 2  # 2: the towers run compiled (TorchScript), so the timings are measured again


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str
    reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False


def _key(config) -> str:
    return machine_key("text", config.hidden_size, config.num_hidden_layers, config.intermediate_size,
                       config.num_attention_heads, VERSION)


def _cache_file():
    from mofind.paths import cache_dir

    return cache_dir() / "text-precision.json"


def measure(bert, rounds: int = ROUNDS) -> dict[str, float]:
    """Median ms of one prompt's forward for every precision that runs here, each with cold caches, the
    precisions interleaved round by round (so a slow moment of the machine costs each the same)."""
    from .lean_bert import LeanBert, available_precisions

    forwards = {name: LeanBert(bert, name) for name in available_precisions()}
    ids = torch.from_numpy(np.random.default_rng(0).integers(1000, bert.config.vocab_size,
                                                             (1, PROMPT_TOKENS))).long()
    evict = np.ones(EVICT_BYTES // 8, np.int64)
    samples: dict[str, list[float]] = {name: [] for name in forwards}
    with torch.inference_mode():
        for forward in forwards.values():
            forward(ids)  # first call: lazy library set-up
        for _ in range(rounds):
            for name, forward in forwards.items():
                evict.max()
                started = time.perf_counter()
                forward(ids)
                samples[name].append((time.perf_counter() - started) * 1000)
    return {name: float(np.median(values)) for name, values in samples.items()}


def pick(timings: dict[str, float]) -> str:
    """The most exact precision whose time is within TOLERANCE of the fastest."""
    from .lean_bert import MORE_EXACT_FIRST

    fastest = min(timings.values())
    return next(name for name in MORE_EXACT_FIRST if name in timings and timings[name] <= fastest * TOLERANCE)


def choose_precision(bert) -> PrecisionChoice:
    """The cached choice for this machine and tower shape, else measured now (~0.5 s) and cached."""
    key, path = _key(bert.config), _cache_file()
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    from .lean_bert import PRODUCTS

    stored = data.get(key)
    if isinstance(stored, dict) and stored.get("precision") in PRODUCTS:
        name = stored["precision"]
        if name == "fp32" or PRODUCTS[name].available():
            return PrecisionChoice(name, stored.get("reason", "cached"), dict(stored.get("timings_ms", {})), True)
    timings = measure(bert)
    name = pick(timings)
    ranked = ", ".join(f"{n} {ms:.2f} ms" for n, ms in sorted(timings.items(), key=lambda item: item[1]))
    choice = PrecisionChoice(name, f"the most exact within {TOLERANCE:g}x of the fastest, measured on this machine "
                                   f"(one {PROMPT_TOKENS}-token prompt, cold caches): {ranked}", timings)
    data[key] = {"precision": name, "reason": choice.reason,
                 "timings_ms": {n: round(ms, 3) for n, ms in timings.items()},
                 "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        from mofind.index.atomic import write_atomic  # plain file replacement: nothing of the index layer

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(data, indent=1).encode())
    except OSError:
        pass  # a read-only cache only costs a measurement next time
    return choice
