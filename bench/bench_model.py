"""Model speed: training step time, text and motion encoding throughput, MaxSim scoring rate.

For the `compact` (MoFind) and `official` (ViT-B/16 + DistilBERT layout) configs, randomly initialised (speed does
not depend on the weights), on CPU and on CUDA when available. Rows report the batch size used.

    python -m bench.bench_model [--configs compact,official] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CAPTIONS = ["a person waves the left hand above the head", "someone walks forward and then turns around",
            "a man kicks with the right leg twice", "the person jumps up and lands softly",
            "an elderly person walks slowly with small steps", "a person raises both arms and claps"]
TRAIN_BATCH = {"compact": 32, "official": 8}


def _timed(fn, reps: int, sync) -> float:
    fn()  # warm-up (allocations, lazy init)
    sync()
    started = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - started) / reps


def _sync_for(device: str):
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def bench_config(name: str, device: str, reps: int) -> list[dict]:
    import numpy as np
    import torch

    from mofind.model.inference import Encoder
    from mofind.train.loop import TrainConfig, Trainer

    torch.set_grad_enabled(True)
    encoder = Encoder.random(name, seed=0, device=device, batch_size=32)
    sync = _sync_for(device)
    frames, width = encoder.window_frames, encoder.config.motion.input_dim
    rng = np.random.default_rng(0)
    rows = []
    base = {"config": name, "device": device}

    captions = [CAPTIONS[i % len(CAPTIONS)] + f" {i}" for i in range(64)]
    seconds = _timed(lambda: encoder.encode_texts(captions), reps, sync)
    rows.append({**base, "what": "encode_texts (one caption at a time semantics)", "batch": 64,
                 "ms_per_batch": 1000 * seconds, "items_per_s": 64 / seconds})

    x = rng.standard_normal((32, frames, width)).astype(np.float32)
    lengths = np.full(32, frames, dtype=np.int64)
    seconds = _timed(lambda: encoder.encode_motion_inputs(x, lengths), reps, sync)
    rows.append({**base, "what": "encode_motion_inputs (featurised windows)", "batch": 32,
                 "ms_per_batch": 1000 * seconds, "items_per_s": 32 / seconds})

    tokens = encoder.encode_texts(["a person waves the left hand"])[0][0]
    (patches, valid), = encoder.encode_motion_inputs(x[:1], lengths[:1])
    gallery = np.repeat(patches[None], 2048, axis=0)
    gallery_valid = np.repeat(valid[None], 2048, axis=0)
    from mofind.model.maxsim import maxsim

    seconds = _timed(lambda: maxsim(tokens[None], np.ones((1, len(tokens)), bool), gallery, gallery_valid),
                     reps, lambda: None)
    rows.append({**base, "device": "cpu (numpy)", "what": "maxsim, 1 query x 2048 windows", "batch": 2048,
                 "ms_per_batch": 1000 * seconds, "items_per_s": 2048 / seconds})

    batch_size = TRAIN_BATCH[name]
    items = [{"x": x[i % 32], "valid_len": frames, "caption": captions[i % 64], "take_id": str(i)}
             for i in range(batch_size)]
    trainer = Trainer(TrainConfig(model=name, batch_size=batch_size, device=device, warmup_steps=0),
                      items, None, encoder.stats, ROOT / "bench" / "results" / "_unused_run", progress=False)
    batch = trainer.collate(items)
    seconds = _timed(lambda: trainer.train_step(batch), max(1, reps - 1), sync)
    rows.append({**base, "what": "train_step (InfoNCE + 0.2 MLM, AdamW)", "batch": batch_size,
                 "ms_per_batch": 1000 * seconds, "items_per_s": batch_size / seconds})
    return rows


def run(configs=("compact", "official"), reps: int = 3) -> list[dict]:
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for name in configs:
            rows.extend(bench_config(name, device, reps))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="compact,official")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    from bench.run_all import markdown_table

    print(markdown_table(run(tuple(args.configs.split(",")), args.reps)))


if __name__ == "__main__":
    main()
