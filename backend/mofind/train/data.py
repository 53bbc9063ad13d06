"""Training data: where (motion, caption) pairs come from and how they become model inputs.

Sources, each producing `Segment`s (a take, or a captioned part of one):
- a HumanML3D or KIT-ML folder in its standard layout (`humanml3d_segments`, `kitml_segments`);
  a caption with start/end tags becomes its own cropped segment, as upstream does;
- a labelled BVH folder (`labelled_folder_segments`): no captions, labels parsed from file names by a
  caption-template file (`mofind.train.captions`), so a studio can train on its own naming convention.

`split_by_take` makes a deterministic, stratified train/validation split; `MotionTextDataset` turns
segments + cached features (`mofind.train.feature_cache`) into the items the training loop reads:
`{"x": (frames, 29) float32 normalised, "valid_len": int, "caption": str, "take_id": str}`, plus
`"group"` (e.g. "content=walk|style=elderly", of the mirrored labels for a mirrored item) for labelled data:
items of one group are interchangeable for their captions, so a contrastive loss should not treat them as
negatives of each other.
Training items get a random window, a fresh random caption and, half the time, the left-right mirror
of the motion with a caption that talks about the other side.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from mofind.features.mirror import mirror_joints
from mofind.features.normalize import AngleStats, motion_input
from mofind.features.window import window_angles41

from .captions import CaptionTemplates
from .feature_cache import FeatureCache, TakeFeatures

MOTION_SUFFIXES = (".bvh",)


@dataclass(frozen=True)
class Segment:
    """One item before features: frames `start:end` (at the model fps) of a file, and how to caption it.

    Exactly one of `captions` (free text, e.g. HumanML3D) or `labels` (from a template file) is set.
    """

    take_id: str
    path: Path
    start: int = 0
    end: int | None = None  # exclusive; None = to the end of the take
    captions: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    mirrorable: bool = True  # False for data that already ships its mirrored twin (HumanML3D "M" ids)

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def stratum(self) -> str:
        """What a stratified split balances: the label combination, or '' for free-text captions."""
        return "|".join(f"{k}={v}" for k, v in self.labels)


# --------------------------------------------------------------------------- sources
def labelled_folder_segments(folder: str | Path, templates: CaptionTemplates, recursive: bool = True
                             ) -> tuple[list[Segment], list[Path]]:
    """Every BVH under `folder` whose name the template pattern understands, plus the files it skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: labelled motion folder not found")
    files = sorted(p for p in (folder.rglob("*") if recursive else folder.iterdir())
                   if p.is_file() and p.suffix.lower() in MOTION_SUFFIXES)
    segments, skipped = [], []
    for path in files:
        labels = templates.labels_for(path.stem)
        if labels is None:
            skipped.append(path)
            continue
        take_id = path.relative_to(folder).with_suffix("").as_posix()
        segments.append(Segment(take_id=take_id, path=path, labels=tuple(labels.items())))
    return segments, skipped


def text_folder_segments(folder, split: str | None, fps: float = 20.0) -> list[Segment]:
    """Segments of a HumanML3D-layout folder (`mofind.io.HumanML3DFolder` / `KITMLFolder`) for one split.

    Whole-clip captions of a motion share one segment (a random one is drawn per training step); a caption
    with start/end times becomes its own segment cropped to that span, as upstream does. Ids that ship their
    mirrored twin (`M` + id) are never mirrored again at training time.
    """
    all_ids = set(folder.ids(None))
    segments = []
    for motion_id in folder.ids(split):
        if motion_id not in all_ids:
            continue  # listed in the split file but its joints file is absent (upstream skips these too)
        path = folder.joints_path(motion_id)
        mirrorable = not (motion_id.startswith("M") and motion_id[1:] in all_ids) and f"M{motion_id}" not in all_ids
        captions = folder.captions(motion_id)
        whole = tuple(c.text for c in captions if c.whole_clip and c.text)
        if whole:
            segments.append(Segment(take_id=motion_id, path=path, captions=whole, mirrorable=mirrorable))
        for caption in captions:
            if not caption.whole_clip and caption.text:
                start, end = int(caption.start * fps), int(caption.end * fps)
                if end > start:
                    segments.append(Segment(take_id=motion_id, path=path, start=start, end=end,
                                            captions=(caption.text,), mirrorable=mirrorable))
    return segments


def humanml3d_segments(root: str | Path, split: str | None, fps: float = 20.0) -> list[Segment]:
    """A HumanML3D folder (new_joints/, texts/, train.txt ...) as segments of `split`."""
    from mofind.io.humanml3d import HumanML3DFolder

    return text_folder_segments(HumanML3DFolder(root), split, fps)


def kitml_segments(root: str | Path, split: str | None, fps: float = 20.0) -> list[Segment]:
    """A KIT-ML folder in the HumanML3D layout (21 joints, 12.5 fps; resampled to `fps` by the reader)."""
    from mofind.io.kitml import KITMLFolder

    return text_folder_segments(KITMLFolder(root), split, fps)


# --------------------------------------------------------------------------- splitting
def split_by_take(segments: Iterable[Segment], val_fraction: float = 0.15, salt: str = "mofind-split-1",
                  held_out: Iterable[str] = ()) -> tuple[list[Segment], list[Segment]]:
    """Deterministic train/validation split by take, stratified by `Segment.stratum`.

    Within each stratum takes are ordered by a salted hash of their id and the first
    `round(n * val_fraction)` (at least one when the stratum has two or more takes) go to validation.
    Take ids in `held_out` always go to validation (and count towards their stratum's share), e.g. takes
    that tests use as unseen examples. All segments of a take land on the same side, and adding takes never
    moves existing ones between sides of a stratum except at its boundary.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    segments = list(segments)
    held_out = set(held_out)
    takes_by_stratum: dict[str, set[str]] = defaultdict(set)
    for segment in segments:
        takes_by_stratum[segment.stratum].add(segment.take_id)
    val_takes: set[str] = set()
    for takes in takes_by_stratum.values():
        forced = takes & held_out
        ordered = sorted(takes - forced, key=lambda t: hashlib.sha256(f"{salt}:{t}".encode()).hexdigest())
        n_val = round(len(takes) * val_fraction)
        if val_fraction > 0 and n_val == 0 and len(takes) >= 2:
            n_val = 1
        val_takes.update(forced)
        val_takes.update(ordered[:max(0, n_val - len(forced))])
    train = [s for s in segments if s.take_id not in val_takes]
    val = [s for s in segments if s.take_id in val_takes]
    return train, val


def fit_stats(segments: Iterable[Segment], features: Mapping[Path, TakeFeatures], mirrored: bool = True,
              window_invariant: bool = False) -> AngleStats:
    """Angle statistics over the given (training) segments; with `mirrored`, their mirrors count too.
    `window_invariant` models get the statistics of `window_angles41` (each segment as one window).

    Counting the mirrors makes the statistics left-right symmetric, so mirroring augmentation feeds the
    model inputs from the same distribution (HumanML3D's official stats include its "M" clips likewise).
    """
    clips = []
    for segment in segments:
        take = features[segment.path]
        if window_invariant:
            joints = take.joints[segment.start:segment.end]
            clips.append(window_angles41(joints))
            if mirrored and segment.mirrorable:
                clips.append(window_angles41(mirror_joints(joints)))
            continue
        clips.append(take.angles41[segment.start:segment.end])
        if mirrored and segment.mirrorable:
            clips.append(take.angles41_mirrored[segment.start:segment.end])
    return AngleStats.fit(clips)


# --------------------------------------------------------------------------- dataset
SHORT_CROP_MIN = 16
"""Shortest training window after a short crop: 0.8 s at 20 fps (two patch rows of the compact model)."""


def training_window(joints: np.ndarray, frames: int, rng: random.Random | None, short_crop_prob: float = 0.25
                    ) -> np.ndarray:
    """A window of at most `frames` frames: a random start and, with `short_crop_prob`, a random shorter length
    (at least `SHORT_CROP_MIN` frames); without `rng` (evaluation) the first `frames` frames, uncropped."""
    start = rng.randint(0, len(joints) - frames) if rng is not None and len(joints) > frames else 0
    window = joints[start:start + frames]
    if rng is not None and len(window) > SHORT_CROP_MIN and rng.random() < short_crop_prob:
        length = rng.randint(SHORT_CROP_MIN, len(window))
        offset = rng.randint(0, len(window) - length)
        window = window[offset:offset + length]
    return window


@dataclass
class MotionTextDataset:
    """Map-style dataset of (motion window, caption) items for the training loop and evaluation.

    Args:
        segments: what to serve; segments whose file has no features are dropped (see `missing`).
        features: `{path: TakeFeatures}` from `FeatureCache.build`.
        stats: normalisation statistics (fit on the training split only).
        frames: window length = the model's `MotionEncoderConfig.frames`.
        templates: caption templates for labelled segments.
        train: random windows, random captions and mirroring; otherwise the first window and the
            canonical caption (first free-text caption / `CaptionTemplates.canonical`), deterministic.
        mirror_prob: chance that a training item is the left-right mirror of its take.
        min_frames: segments shorter than this are dropped (upstream drops HumanML3D segments < 40).
        window_invariant: items read `window_angles41` of the chosen window (the model config's flag).
        short_crop_prob: with `window_invariant` training, the chance that a window is cut to a random
            shorter length (at least `SHORT_CROP_MIN` frames), so short library clips are not out of
            distribution.
        seed: with the epoch (`set_epoch`) and the index, fixes every random choice, so a resumed run
            sees the same items as an uninterrupted one.
        source: what training items name as their "source" (vocabulary counts); None = none.

    Training items of labelled segments whose templates name body parts also carry "part_spans"
    (`CaptionTemplates.sample_with_spans`) for the token->part loss.
    """

    segments: list[Segment]
    features: Mapping[Path, TakeFeatures]
    stats: AngleStats
    frames: int
    templates: CaptionTemplates | None = None
    train: bool = True
    mirror_prob: float = 0.5
    min_frames: int = 1
    seed: int = 0
    epoch: int = 0
    window_invariant: bool = False
    short_crop_prob: float = 0.25
    source: str | None = None
    missing: list[Segment] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.frames <= 0:
            raise ValueError(f"frames must be positive, got {self.frames}")
        kept, self.missing = [], []
        for segment in self.segments:
            if segment.labels and self.templates is None:
                raise ValueError(f"segment {segment.take_id} has labels but no caption templates were given")
            take = self.features.get(segment.path)
            if take is None or self._length(segment, take) < self.min_frames:
                self.missing.append(segment)
            else:
                kept.append(segment)
        self.segments = kept

    def set_epoch(self, epoch: int) -> None:
        """New random windows, captions and mirrors for every epoch (deterministic given the seed)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, index: int) -> dict:
        segment = self.segments[index]
        take = self.features[segment.path]
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        mirror = (self.train and segment.mirrorable and self.mirror_prob > 0
                  and rng.random() < self.mirror_prob)
        caption, spans = self._caption_spans(segment, rng, mirror)
        if caption is None:  # labels without a mirrored twin (e.g. only a left-hand label exists)
            mirror = False
            caption, spans = self._caption_spans(segment, rng, False)
        if self.window_invariant:
            angles, start = self._window_angles(take.joints[segment.start:segment.end], rng, mirror), 0
        else:
            angles = take.angles41_mirrored if mirror else take.angles41
            angles = angles[segment.start:segment.end]
            start = rng.randint(0, len(angles) - self.frames) if self.train and len(angles) > self.frames else 0
        x, valid_len = motion_input(angles, self.stats, self.frames, start=start)
        item = {"x": x, "valid_len": valid_len, "caption": caption, "take_id": segment.take_id}
        if spans:
            item["part_spans"] = spans
        if self.source:
            item["source"] = self.source
        if segment.labels:
            labels = self.templates.mirror_labels(segment.label_dict) if mirror else segment.label_dict
            item["group"] = "|".join(f"{k}={v}" for k, v in labels.items())
        return item

    def _window_angles(self, joints: np.ndarray, rng: random.Random, mirror: bool) -> np.ndarray:
        """The window this item shows (random start and, sometimes, a shorter length when training)."""
        window = training_window(joints, self.frames, rng if self.train else None, self.short_crop_prob)
        return window_angles41(mirror_joints(window) if mirror else window)

    def captions(self) -> list[str]:
        """The evaluation caption of every item, in order (what `train=False` items carry)."""
        return [self._caption(segment, None, False) for segment in self.segments]

    def _caption_spans(self, segment: Segment, rng: random.Random, mirror: bool):
        """(caption, part spans) of a training item; spans only for labelled takes whose templates have parts."""
        if not (self.train and segment.labels and self.templates.parts):
            return self._caption(segment, rng, mirror), None
        labels = segment.label_dict
        if mirror:
            labels = self.templates.mirror_labels(labels)
            if labels is None:
                return None, None
        return self.templates.sample_with_spans(labels, rng)

    def _caption(self, segment: Segment, rng: random.Random | None, mirror: bool) -> str | None:
        if segment.labels:
            labels = segment.label_dict
            if mirror:
                labels = self.templates.mirror_labels(labels)
                if labels is None:
                    return None
            if not self.train or rng is None:
                return self.templates.canonical(labels)
            return self.templates.sample(labels, rng)
        if not segment.captions:
            raise ValueError(f"segment {segment.take_id} ({segment.path}) has neither captions nor labels")
        text = segment.captions[0] if (not self.train or rng is None) else rng.choice(segment.captions)
        if mirror:
            from mofind.features.mirror import mirror_caption

            text = mirror_caption(text)
        return text

    @staticmethod
    def _length(segment: Segment, take: TakeFeatures) -> int:
        return len(range(take.num_frames)[segment.start:segment.end])


# --------------------------------------------------------------------------- one call per source
@dataclass
class PreparedData:
    """Train and validation datasets of one source, the statistics (fit on train) and what was left out."""

    train: MotionTextDataset
    val: MotionTextDataset
    stats: AngleStats
    skipped: list[Path] = field(default_factory=list)  # names the templates do not understand
    failed: dict[Path, str] = field(default_factory=dict)  # files that could not be read, with the reason


def prepare_labelled_folder(folder: str | Path, templates: CaptionTemplates | str | Path, frames: int, *,
                            val_fraction: float = 0.15, workers: int = 2, cache: FeatureCache | None = None,
                            seed: int = 0, mirror_prob: float = 0.5, progress=None, held_out=(),
                            window_invariant: bool = False) -> PreparedData:
    """A labelled BVH folder -> stratified by-take split (`held_out` take ids forced into validation),
    cached features, stats from the train split."""
    if not isinstance(templates, CaptionTemplates):
        templates = CaptionTemplates.load(templates)
    segments, skipped = labelled_folder_segments(folder, templates)
    if not segments:
        raise ValueError(f"{folder}: no motion file name matches the pattern of {templates.source}")
    train, val = split_by_take(segments, val_fraction, held_out=held_out)
    return _prepare(segments, train, val, frames=frames, templates=templates, workers=workers, cache=cache,
                    seed=seed, mirror_prob=mirror_prob, progress=progress, skipped=skipped,
                    window_invariant=window_invariant)


def prepare_text_folder(root: str | Path, frames: int, *, kind: str = "humanml3d", train_split: str = "train",
                        val_split: str = "val", workers: int = 2, cache: FeatureCache | None = None, seed: int = 0,
                        mirror_prob: float = 0.5, min_frames: int | None = None, progress=None,
                        window_invariant: bool = False) -> PreparedData:
    """HumanML3D or KIT-ML with their own split files; segments shorter than upstream's minimum are dropped
    (40 frames for HumanML3D, 24 for KIT-ML, at 20 fps)."""
    readers = {"humanml3d": (humanml3d_segments, 40), "kitml": (kitml_segments, 24)}
    if kind not in readers:
        raise ValueError(f"kind must be one of {sorted(readers)}, got {kind!r}")
    read, default_min = readers[kind]
    train, val = read(root, train_split), read(root, val_split)
    if not train:
        raise ValueError(f"{root}: the {train_split!r} split has no motion with captions")
    return _prepare(train + val, train, val, frames=frames, templates=None, workers=workers, cache=cache, seed=seed,
                    mirror_prob=mirror_prob, progress=progress, window_invariant=window_invariant,
                    min_frames=default_min if min_frames is None else min_frames)


def prepare_bandai(frames: int, *, archive: str | Path | None = None, **kwargs) -> PreparedData:
    """The Bandai dev archive (extracted once into the cache) with the packaged Bandai caption templates;
    the takes that shared/data/bvh-samples has loose copies of stay in validation (`bandai.HELD_OUT`)."""
    from .bandai import HELD_OUT, TEMPLATES, ensure_extracted

    kwargs.setdefault("held_out", HELD_OUT)
    return prepare_labelled_folder(ensure_extracted(archive), kwargs.pop("templates", TEMPLATES), frames, **kwargs)


def _prepare(segments, train_segments, val_segments, *, frames, templates, workers, cache, seed, mirror_prob,
             progress, skipped=(), min_frames: int = 1, window_invariant: bool = False) -> PreparedData:
    cache = cache or FeatureCache()
    features, failed = cache.build(sorted({s.path for s in segments}), workers=workers, progress=progress)
    train_segments = [s for s in train_segments if s.path in features]
    if not train_segments:
        raise ValueError("no readable training motion: " + "; ".join(list(failed.values())[:3]))
    stats = fit_stats(train_segments, features, window_invariant=window_invariant)
    common = dict(features=features, stats=stats, frames=frames, templates=templates, min_frames=min_frames,
                  window_invariant=window_invariant)
    return PreparedData(
        train=MotionTextDataset(train_segments, train=True, mirror_prob=mirror_prob, seed=seed, **common),
        val=MotionTextDataset([s for s in val_segments if s.path in features], train=False, **common),
        stats=stats, skipped=list(skipped), failed=failed,
    )
