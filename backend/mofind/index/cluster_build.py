"""`mofind index --cluster ADDRESS`: parse and encode on a Ray cluster, commit on this machine.

The files to index are a Ray Data dataset (`ray.data.from_items`); `map_batches` runs a pool of
`ParseAndEncode` actors, each loading the model once (on a GPU where the cluster has them) and turning a
batch of files into clip records + per-window embeddings, exactly what `build.prepare_file` and
`Encoder.encode_motions` give on one machine. The driver stages them through the normal `IndexWriter`, so
the chunks are written, checksummed and committed by one process and the manifest stays the single
commit point; every node must see the motion files and the index folder at the same paths (shared storage).
Skipping unchanged files, moved-file detection, failure reports and resuming are `build_index`'s own.
"""

from __future__ import annotations

import pickle
import threading
from functools import partial
from pathlib import Path

import numpy as np

from .build import BuildReport, _Outcome, _Pipeline, _Task, build_index, prepare_file

FILES_PER_BATCH = 8


class ParseAndEncode:
    """Ray Data worker: pickled `_Task`s -> pickled (outcome without joints, per-take encodings, model hash)."""

    def __init__(self, model_dir: str | None, device: str, threads: int):
        import torch

        from .encoders import load_encoder

        torch.set_num_threads(max(1, threads))
        self.encoder = load_encoder(model_dir, device=device)

    def __call__(self, batch: dict) -> dict:
        return {"payload": np.array([pickle.dumps(self._one(pickle.loads(blob))) for blob in batch["task"]],
                                    dtype=object)}

    def _one(self, task: _Task) -> tuple[_Outcome, list, str]:
        outcome = prepare_file(task)
        encoded = []
        for prepared in outcome.prepared:  # as `_Pipeline._encode`: a take the model cannot encode is reported
            try:
                encoded.append(self.encoder.encode_motions([prepared.joints[w.start:w.end]
                                                            for w in prepared.windows]))
            except Exception as exc:  # noqa: BLE001
                encoded.append(f"{prepared.record.source}: the model could not encode it ({exc})")
            prepared.joints = np.zeros((0, 22, 3), np.float32)  # not needed any more: do not ship it back
        return outcome, encoded, self.encoder.model_hash


class ClusterPipeline(_Pipeline):
    """`_Pipeline` whose parsing and encoding happen in Ray Data workers; staging and commits stay here."""

    def __init__(self, *args, model_dir: str | None = None, gpus_per_worker: float = 0.0, threads: int = 1,
                 files_per_batch: int = FILES_PER_BATCH, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_dir = model_dir
        self.gpus_per_worker = gpus_per_worker
        self.threads = threads
        self.files_per_batch = files_per_batch
        self._encoded: dict[int, object] = {}

    def run(self, tasks: list[_Task], workers: int, cancel: threading.Event | None) -> None:
        import ray

        self._notify(0)
        if not tasks:
            return
        self.cancel = cancel
        dataset = ray.data.from_items([{"task": pickle.dumps(task)} for task in tasks],
                                      override_num_blocks=max(1, -(-len(tasks) // self.files_per_batch)))
        encoded = dataset.map_batches(
            ParseAndEncode, fn_constructor_kwargs={"model_dir": self.model_dir,
                                                   "device": "cuda" if self.gpus_per_worker else "cpu",
                                                   "threads": self.threads},
            batch_size=self.files_per_batch, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
            num_cpus=1, num_gpus=self.gpus_per_worker or None)
        expected = self.encoder.model_hash
        for row in encoded.iter_rows():
            if self._cancelled():
                break
            outcome, encodings, model_hash = pickle.loads(row["payload"])
            if model_hash != expected:
                raise RuntimeError(f"a cluster worker loaded another model ({model_hash}, this index needs "
                                   f"{expected}): give every node the same --model folder")
            for prepared, embeddings in zip(outcome.prepared, encodings, strict=True):
                self._encoded[id(prepared)] = embeddings
            self._accept(outcome)
        self.flush(commit=True)

    def _encode(self, buffer):
        for prepared in buffer:
            yield prepared, self._encoded.pop(id(prepared))


def default_cluster_workers() -> tuple[int, float]:
    """(workers, GPUs per worker): one worker per GPU where the cluster has GPUs, else one per CPU but one
    (left to Ray Data's own bookkeeping tasks)."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return gpus, 1.0
    return max(1, int(resources.get("CPU", 1)) - 1), 0.0


def build_index_on_cluster(paths, index_dir: str | Path, encoder, *, model_dir: str | Path | None = None,
                           workers: int | None = None, gpus_per_worker: float | None = None, **kwargs) -> BuildReport:
    """`build_index` with parsing and encoding spread over the Ray cluster this process has joined."""
    auto_workers, auto_gpus = default_cluster_workers()
    pipeline = partial(ClusterPipeline, model_dir=str(model_dir) if model_dir is not None else None,
                       gpus_per_worker=auto_gpus if gpus_per_worker is None else gpus_per_worker)
    return build_index(paths, index_dir, encoder, workers=workers or auto_workers, pipeline=pipeline, **kwargs)
