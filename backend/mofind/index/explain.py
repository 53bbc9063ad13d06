"""Why a window matched: each query word's best patch, as a body part and a time span of the take.

MaxSim is an average of per-token maxima, so the explanation is exact: the score is the mean of the
listed similarities. Patches are the stored (5-bit) ones decoded, i.e. what search scored; search also
rounds the query tokens to int8 (`codec.quantize_queries`), so its score can differ in the third decimal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .linalg import matmul
from .store import IndexReader, WindowRef


@dataclass
class TokenMatch:
    word: str
    part: str  # readable body part ("left elbow")
    part_id: str  # the model's part name ("l_elbow")
    row: int
    col: int
    t_start: float  # seconds within the source take
    t_end: float
    similarity: float

    def to_dict(self) -> dict:
        return {"word": self.word, "part": self.part, "part_id": self.part_id, "row": self.row, "col": self.col,
                "t_start": round(self.t_start, 4), "t_end": round(self.t_end, 4),
                "similarity": round(self.similarity, 6)}


@dataclass
class Explanation:
    clip_id: str
    start_frame: int  # window in source frames
    end_frame: int
    score: float
    tokens: list[TokenMatch]
    matrix: np.ndarray  # (L, P) float32 token x patch cosine; NaN where the patch is padding
    grid: tuple[int, int]
    part_names: list[str]  # readable, one per grid column


def readable_part_names(part_names) -> list[str]:
    """Model part names -> what an animator reads ("l_elbow" -> "left elbow")."""
    try:
        from mofind.features.parts import PART_LABELS, PART_NAMES

        labels = dict(zip(PART_NAMES, PART_LABELS, strict=True))
    except ImportError:
        labels = {}
    return [labels.get(name, name.replace("_", " ")) for name in part_names]


def choose_window(reader: IndexReader, clip_id: str, tokens: np.ndarray | None,
                  start_frame: int | None) -> WindowRef:
    """The window starting nearest `start_frame` (source frames), else the best window for `tokens`."""
    refs = reader.windows(clip_id)
    if start_frame is not None:
        return min(refs, key=lambda ref: (abs(ref.source_start - start_frame), ref.source_start))
    if tokens is None or len(refs) == 1:
        return refs[0]
    scores = []
    for ref in refs:
        patches, valid = reader.window_patches(ref)
        scores.append(float(matmul(tokens, patches[valid].T).max(1).mean()))
    return refs[int(np.argmax(scores))]


def explain(reader: IndexReader, encoder, query: str, clip_id: str, start_frame: int | None = None) -> Explanation:
    """Token-by-token account of how `query` matches a window of `clip_id` (KeyError if not indexed)."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("a query must be a non-empty string")
    tokens, words = encoder.encode_texts([query])[0]
    if len(tokens) == 0:
        raise ValueError("the query has no words the model knows")
    return explain_tokens(reader, tokens, words, clip_id, start_frame)


def explain_tokens(reader: IndexReader, tokens: np.ndarray, words: list[str], clip_id: str,
                   start_frame: int | None = None) -> Explanation:
    spec = reader.spec
    clip = reader.clip(clip_id)
    ref = choose_window(reader, clip_id, tokens, start_frame)
    patches, valid = reader.window_patches(ref)
    matrix = matmul(np.asarray(tokens, np.float32), patches.T).astype(np.float32)
    matrix[:, ~valid] = np.nan
    rows, cols = spec.grid
    names = readable_part_names(spec.part_names)
    take_start = clip.frame_range[0] / clip.source_fps
    take_end = clip.frame_range[1] / clip.source_fps
    matches = []
    for t, word in enumerate(words):
        best = int(np.nanargmax(matrix[t]))
        row, col = divmod(best, cols)
        start = take_start + (ref.start + row * spec.frames_per_row) / spec.fps
        end = min(take_start + (ref.start + (row + 1) * spec.frames_per_row) / spec.fps, take_end)
        matches.append(TokenMatch(word=word, part=names[col], part_id=spec.part_names[col], row=row, col=col,
                                  t_start=start, t_end=end, similarity=float(matrix[t, best])))
    score = float(np.mean([m.similarity for m in matches]))
    return Explanation(clip_id=clip_id, start_frame=ref.source_start, end_frame=ref.source_end, score=score,
                       tokens=matches, matrix=matrix, grid=(rows, cols), part_names=names)
