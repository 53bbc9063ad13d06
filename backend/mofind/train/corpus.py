"""The shipped model's training corpus: every motion shared/ allows, each with the captions it can have.

Sources (items per epoch set by `CorpusShares`):
- Bandai dev takes, captioned from their labels by the template file (with body parts per label);
- Bandai and CMU takes, random windows captioned by the kinematic describer (`mofind.describe`);
- CMU takes with their CMU description (short labels such as "walk" or "salsa dance");
- the HumanML3D captions of CMU takes, each on the time segment it describes.

Splits: Bandai keeps its stratified split (`split_by_take`, the bvh-samples takes held out). CMU is split by take,
deterministically (`cmu_split`): a third of the HumanML3D-captioned takes and a fifth of the others go to
validation, so no validation motion is trained on; a training caption identical to a held-out one is dropped, and
the trainer drops the held-out captions from the MLM text pool too (`Corpus.heldout_texts`), so no validation
caption is trained on either. Takes of the long dance/martial-arts sets that share
their category and frame count (the archive repeats some takes under two names) stay on one side together.
The angle statistics come from the training side only (Bandai takes, CMU 96-frame chunks, with mirrors).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .data import MotionTextDataset, Segment, fit_stats, split_by_take
from .feature_cache import FeatureCache
from .mix import DescribedWindows, MixedDataset, chunk_segments

CMU_SALT = "mofind-cmu-split-1"
CHUNK_FRAMES = 120  # long takes are sampled per 6 s chunk, i.e. in proportion to their length


@dataclass
class CorpusShares:
    """Items per epoch of each source, as multiples of its own size (Bandai templates: one pass over the takes)."""

    bandai_templates: float = 1.0
    bandai_describer: float = 0.3
    cmu_describer: float = 2.0
    cmu_descriptions: float = 1.0
    cmu_humanml3d: float = 8.0


@dataclass
class Corpus:
    train: MixedDataset
    val: MotionTextDataset  # Bandai validation (model selection: the All protocol)
    stats: object
    cmu_val_takes: list = field(default_factory=list)  # CmuTake records held out
    cmu_train_takes: list = field(default_factory=list)
    heldout_texts: set = field(default_factory=set)  # captions of held-out takes: never trained on, MLM included
    failed: dict = field(default_factory=dict)


def cmu_group(take) -> str:
    """Takes that must stay on one side of the split together (same category and length = a repeated take)."""
    return take.take_id if take.segments else f"{take.category}:{take.frames}"


def cmu_split(takes, captioned_fraction: float = 1 / 3, other_fraction: float = 0.2, salt: str = CMU_SALT
              ) -> tuple[list, list]:
    """Deterministic by-take split of CMU records -> (train, validation)."""
    groups: dict[str, list] = {}
    for take in takes:
        groups.setdefault(cmu_group(take), []).append(take)
    val_groups = set()
    for captioned, fraction in ((True, captioned_fraction), (False, other_fraction)):
        keys = sorted((k for k, members in groups.items() if bool(members[0].segments) == captioned),
                      key=lambda k: hashlib.sha256(f"{salt}:{k}".encode()).hexdigest())
        val_groups.update(keys[:round(len(keys) * fraction)])
    train = [t for k, members in groups.items() if k not in val_groups for t in members]
    val = [t for k, members in groups.items() if k in val_groups for t in members]
    return sorted(train, key=lambda t: t.take_id), sorted(val, key=lambda t: t.take_id)


def cmu_whole_segments(takes, fps: float = 20.0) -> list[Segment]:
    return [Segment(take_id=f"cmu/{t.take_id}", path=t.bvh, captions=(t.description,) if t.description else ())
            for t in takes]


def humanml3d_segments(takes, fps: float = 20.0, exclude=frozenset()) -> list[Segment]:
    """Each HumanML3D segment of a take as its own captioned segment (frames at `fps`); captions whose
    `normalise_text` is in `exclude` (e.g. a held-out take's identical caption) are left out."""
    out = []
    for take in takes:
        for segment in take.segments:
            start, end = int(round(segment.start_s * fps)), int(round(segment.end_s * fps))
            texts = tuple(t for t in segment.texts if normalise_text(t) not in exclude)
            if end > start and texts:
                out.append(Segment(take_id=f"cmu/{take.take_id}", path=take.bvh, start=start, end=end,
                                   captions=texts))
    return out


def normalise_text(text: str) -> str:
    """What makes two captions the same text (case and surrounding or repeated spaces do not count)."""
    return " ".join(text.lower().split())


def heldout_texts(takes) -> set[str]:
    """The normalised captions of held-out takes (to keep out of every training text, MLM included)."""
    return {normalise_text(text) for take in takes for segment in take.segments for text in segment.texts}


def _no_describer(joints, fps, rng=None):
    raise RuntimeError("mofind.describe is not available in this build")


def prepare_corpus(frames: int, *, shares: CorpusShares | None = None, window_invariant: bool = True,
                   cache: FeatureCache | None = None, workers: int = 2, seed: int = 0, progress=None,
                   describe=None, stats=None) -> Corpus:
    """Bandai + CMU, split, featurised, statistics fit on the training side (or the given `stats`, e.g. those of
    the model a run starts from, so its inputs keep their meaning), mixed per `shares`."""
    from . import bandai, cmu
    from .captions import CaptionTemplates

    shares = shares or CorpusShares()
    if describe is None:
        try:
            from mofind.describe import describe_motion as describe
        except ImportError:  # no describer in this build: train on labels and human captions only
            shares = CorpusShares(**{**vars(shares), "bandai_describer": 0.0, "cmu_describer": 0.0})
            describe = _no_describer
    cache = cache or FeatureCache()
    templates = CaptionTemplates.load(bandai.TEMPLATES)
    from .data import labelled_folder_segments

    bandai_segments, _ = labelled_folder_segments(bandai.ensure_extracted(), templates)
    bandai_train, bandai_val = split_by_take(bandai_segments, held_out=bandai.HELD_OUT)
    cmu_train, cmu_val = cmu_split(cmu.load_takes())
    files = sorted({s.path for s in bandai_segments} | {t.bvh for t in cmu_train + cmu_val})
    features, failed = cache.build(files, workers=workers, progress=progress)
    cmu_whole = [s for s in cmu_whole_segments(cmu_train) if s.path in features]
    stats_segments = [s for s in bandai_train if s.path in features] + chunk_segments(cmu_whole, features, frames)
    if stats is None:
        stats = fit_stats(stats_segments, features, window_invariant=window_invariant)
    common = dict(features=features, stats=stats, frames=frames, window_invariant=window_invariant, seed=seed)
    templated = MotionTextDataset(bandai_train, templates=templates, train=True, source="bandai templates", **common)
    chunks = chunk_segments(cmu_whole, features, CHUNK_FRAMES)
    described_kwargs = dict(features=features, stats=stats, frames=frames, seed=seed, describe=describe)
    bandai_described = DescribedWindows([s for s in bandai_train if s.path in features], source="describer",
                                        **described_kwargs)
    cmu_described = DescribedWindows(chunks, source="describer", **described_kwargs)
    described_cmu = MotionTextDataset([s for s in chunks if s.captions], train=True,
                                      source="cmu descriptions", **common)
    held_texts = heldout_texts(cmu_val)
    humanml = MotionTextDataset(humanml3d_segments(cmu_train, exclude=held_texts), train=True, min_frames=16,
                                source="humanml3d captions", **common)

    def count(dataset, share: float) -> int:
        return int(round(len(dataset) * share)) if len(dataset) else 0

    mixed = MixedDataset([(templated, count(templated, shares.bandai_templates)),
                          (bandai_described, count(bandai_described, shares.bandai_describer)),
                          (cmu_described, count(cmu_described, shares.cmu_describer)),
                          (described_cmu, count(described_cmu, shares.cmu_descriptions)),
                          (humanml, count(humanml, shares.cmu_humanml3d))])
    val = MotionTextDataset([s for s in bandai_val if s.path in features], templates=templates, train=False,
                            features=features, stats=stats, frames=frames, window_invariant=window_invariant)
    return Corpus(train=mixed, val=val, stats=stats, cmu_val_takes=cmu_val, cmu_train_takes=cmu_train,
                  heldout_texts=held_texts, failed=failed)


def prepare_described_folder(folder, frames: int, *, val_fraction: float = 0.15, window_invariant: bool = True,
                             cache: FeatureCache | None = None, workers: int = 2, seed: int = 0, progress=None,
                             stats=None, describe=None) -> Corpus:
    """A studio's own unlabelled BVH folder, captioned by the kinematic describer: random windows with varied
    wording for training, the first window of each held-out take with the canonical wording for validation.
    With `stats` (e.g. `init_from`'s) a run adapts an existing model to the library without changing its inputs."""
    from .data import MOTION_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: motion folder not found")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MOTION_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no .bvh files")
    segments = [Segment(take_id=p.relative_to(folder).with_suffix("").as_posix(), path=p) for p in files]
    train, val = split_by_take(segments, val_fraction)
    cache = cache or FeatureCache()
    features, failed = cache.build(files, workers=workers, progress=progress)
    train = [s for s in train if s.path in features]
    if not train:
        raise ValueError(f"{folder}: no readable training motion: " + "; ".join(list(failed.values())[:3]))
    if stats is None:
        stats = fit_stats(chunk_segments(train, features, frames), features, window_invariant=window_invariant)
    kwargs = dict(features=features, stats=stats, frames=frames, seed=seed, describe=describe)
    described = DescribedWindows(train, **kwargs)
    return Corpus(train=MixedDataset([(described, len(described))]),
                  val=DescribedWindows([s for s in val if s.path in features], train=False, **kwargs),
                  stats=stats, failed=failed)
