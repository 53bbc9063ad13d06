"""Mixing training sources: labelled takes, human captions and describer captions in one epoch.

- `DescribedWindows`: random windows of any take, captioned by the kinematic describer (`mofind.describe`) from
  the window's own joints, with varied wording (its `rng`) and the body parts of every phrase (for the
  token->part loss). A mirrored window is described after mirroring, so its caption is mirrored by construction.
- `MixedDataset`: several map-style datasets with a number of items each per epoch; a source with fewer items
  than its share repeats (each repeat draws new windows and captions), one with more rotates through its items
  from epoch to epoch.
- `chunk_segments`: long takes cut into time chunks, so a take is sampled in proportion to its length.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence
from pathlib import Path

import numpy as np

from mofind.features.mirror import mirror_joints
from mofind.features.normalize import AngleStats, motion_input
from mofind.features.window import window_angles41

from .data import Segment, training_window
from .feature_cache import TakeFeatures

_REPEAT_STRIDE = 1000  # epoch seen by the k-th repeat of a source inside one epoch: epoch * stride + k


def chunk_segments(segments: Sequence[Segment], features: Mapping[Path, TakeFeatures], chunk_frames: int,
                   min_frames: int = 16) -> list[Segment]:
    """Cut every segment into consecutive chunks of about `chunk_frames` frames (the last may be longer, never
    shorter than `min_frames` unless the whole segment is)."""
    out = []
    for segment in segments:
        take = features.get(segment.path)
        if take is None:
            continue
        start = segment.start
        end = take.num_frames if segment.end is None else min(segment.end, take.num_frames)
        pieces = max(1, (end - start) // chunk_frames)
        bounds = [start + round(i * (end - start) / pieces) for i in range(pieces + 1)]
        out.extend(replace(segment, start=a, end=b) for a, b in zip(bounds, bounds[1:]) if b - a >= min(min_frames,
                                                                                                        end - start))
    return out


@dataclass
class DescribedWindows:
    """Training items whose captions the kinematic describer writes from the window's joints.

    Items: x, valid_len, caption (the description's sentence), take_id, part_spans (each phrase's characters in
    the sentence and its body parts), source. With `train=False` (validation) an item is the segment's first
    window, unmirrored, with the describer's canonical wording: deterministic.
    """

    segments: list[Segment]
    features: Mapping[Path, TakeFeatures]
    stats: AngleStats
    frames: int
    fps: float = 20.0
    mirror_prob: float = 0.5
    short_crop_prob: float = 0.25
    seed: int = 0
    epoch: int = 0
    source: str = "describer"
    train: bool = True
    describe: object = None  # callable(joints, fps, rng) -> Description; default mofind.describe.describe_motion
    missing: list[Segment] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.describe is None:
            from mofind.describe import describe_motion

            self.describe = describe_motion
        kept, self.missing = [], []
        for segment in self.segments:
            (kept if segment.path in self.features else self.missing).append(segment)
        self.segments = kept

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, index: int) -> dict:
        segment = self.segments[index]
        take = self.features[segment.path]
        rng = random.Random(f"describer:{self.seed}:{self.epoch}:{index}") if self.train else None
        joints = take.joints[segment.start:segment.end]
        window = training_window(joints, self.frames, rng, self.short_crop_prob)
        if rng is not None and segment.mirrorable and rng.random() < self.mirror_prob:
            window = mirror_joints(window)
        wording = np.random.default_rng(rng.getrandbits(64)) if rng is not None else None
        description = self.describe(window, self.fps, rng=wording)
        sentence = description.sentence
        x, valid_len = motion_input(window_angles41(window), self.stats, self.frames)
        return {"x": x, "valid_len": valid_len, "caption": sentence, "take_id": segment.take_id,
                "part_spans": phrase_spans(sentence, description.phrases), "source": self.source}


def phrase_spans(sentence: str, phrases) -> list[tuple[int, int, tuple[str, ...]]]:
    """Each phrase with body parts -> (start, end, parts) of its first occurrence after the previous phrase.

    "global" (the root position column) is dropped from a phrase that names other parts too: a walk is
    explained by the legs that make it, not by where the body ends up, and an explanation pointing every
    locomotion word at "root position" tells an animator nothing.
    """
    spans, cursor = [], 0
    for phrase in phrases:
        parts = tuple(getattr(phrase, "parts", ()) or ())
        if len(parts) > 1 and "global" in parts:
            parts = tuple(p for p in parts if p != "global")
        start = sentence.find(phrase.text, cursor)
        if start < 0:
            start = sentence.find(phrase.text)
        if start < 0 or not parts:
            continue
        spans.append((start, start + len(phrase.text), parts))
        cursor = start + len(phrase.text)
    return spans


@dataclass
class MixedDataset:
    """`(dataset, items per epoch)` pairs served as one map-style dataset."""

    sources: list[tuple[object, int]]
    epoch: int = 0

    def __post_init__(self) -> None:
        for dataset, count in self.sources:
            if count < 0 or (count and len(dataset) == 0):
                raise ValueError(f"a source with {len(dataset)} items cannot serve {count} items per epoch")
        self.sources = [(dataset, count) for dataset, count in self.sources if count]
        self._starts = np.cumsum([0] + [count for _, count in self.sources])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def locate(self, index: int, epoch: int | None = None) -> tuple[object, int, int]:
        """(source dataset, item in it, repeat) that mixed item `index` reads in `epoch` (default: the current)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        which = int(np.searchsorted(self._starts, index, side="right") - 1)
        dataset, count = self.sources[which]
        epoch = self.epoch if epoch is None else epoch
        position = index - int(self._starts[which]) + epoch * count  # rotate through large sources
        repeat, item = divmod(position, len(dataset))
        return dataset, item, repeat

    def __getitem__(self, index: int) -> dict:
        dataset, item, repeat = self.locate(index)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.epoch * _REPEAT_STRIDE + repeat)
        return dataset[item]

    def describe_sources(self) -> list[str]:
        return [f"{getattr(d, 'source', None) or type(d).__name__}: {c} of {len(d)}" for d, c in self.sources]


_SIDE_WORDS = frozenset({"left", "right", "both"})


def content_family(content: str) -> str:
    """A content label without its side ("wave-left-hand" and "wave-both-hands" -> "wave-hand"): the family
    whose members a mirrored item can move between."""
    return "-".join("hand" if w == "hands" else w for w in content.split("-") if w not in _SIDE_WORDS)


def content_keys(dataset, epoch: int) -> list[str | None]:
    """Per item of a training dataset (a `MixedDataset` in `epoch`, or one labelled dataset) its content family,
    None for items without a content label; reads labels only, no motion."""
    if isinstance(dataset, MixedDataset):
        own = {id(source): content_keys(source, epoch) for source, _ in dataset.sources}
        located = (dataset.locate(i, epoch) for i in range(len(dataset)))
        return [own[id(source)][item] for source, item, _ in located]
    segments = getattr(dataset, "segments", None)
    if segments is None:
        return [None] * len(dataset)
    return [content_family(s.label_dict["content"]) if s.labels and "content" in s.label_dict else None
            for s in segments]


def grouped_order(order: list[int], keys: Sequence[str | None], batch_size: int, block: int, generator) -> list[int]:
    """Re-deal each run of `block` batches of `order` so that items with the same key sit in the same batch
    (same items per run, so an epoch still sees every item once); unkeyed items fill the rest at random."""
    import torch

    out: list[int] = []
    span = batch_size * block
    for start in range(0, len(order), span):
        run = order[start:start + span]
        keyed = [i for i in run if keys[i] is not None]
        loose = [i for i in run if keys[i] is None]
        families = sorted({keys[i] for i in keyed})
        rank = {f: r for f, r in zip(families, torch.randperm(len(families), generator=generator).tolist())}
        keyed.sort(key=lambda i: rank[keys[i]])  # stable: random order within a family
        batches = max(1, len(run) // batch_size)
        for b in range(batches):
            lo_k, hi_k = b * len(keyed) // batches, (b + 1) * len(keyed) // batches
            lo_l, hi_l = b * len(loose) // batches, (b + 1) * len(loose) // batches
            out += keyed[lo_k:hi_k] + loose[lo_l:hi_l]
    return out
