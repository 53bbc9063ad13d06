"""Fusing the library's own words (take names, labels; see library_text.py) with the motion's MaxSim score.

Per take and source s ("name", "label") the text score is

    text_s = max(keywords_s, semantic_s),  in [0, 1]
    keywords_s = share of the query's content words found among the source's words (crude stems, so
                 "sitting"/"sits"/"sit" and "waves"/"waving"/"wave" meet; stop words like "a person" dropped)
    semantic_s = clip((cos(q, v_s) - SEMANTIC_FLOOR) / (1 - SEMANTIC_FLOOR), 0, 1): q is the query's pooled
                 sentence embedding (mean of its token embeddings, normalised) and v_s the source text's, both
                 from the same text encoder the motion search uses, stored in the index at indexing time

and a window's fused score is  MaxSim + names_weight * max_s text_s.  Text is per take, so the ranking of a
take's own windows never changes. When every searched take gets the same text score (no words at all, as in a
library of anonymised file names, or the same folder name everywhere) nothing is added: the ranking and the
scores are exactly MaxSim's. In two-stage search the takes whose text scores best are re-ranked exactly too,
so a well-named take that the pooled first stage would miss can still be found.

A result's `matched` lists the sources that matched: "name"/"label" when that source's text score reaches
MATCH_THRESHOLD, "motion" when its MaxSim alone would have placed the take among the top `k`. A take that is
in the top `k` by neither alone got there by its motion and a weaker name or label score together: it lists
"motion" and each source with a text score above 0 (never an empty list, which read as "nothing matched").
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass

import numpy as np

SOURCES = ("name", "label")
DEFAULT_NAMES_WEIGHT = 0.25
MAX_NAMES_WEIGHT = 10.0
SEMANTIC_FLOOR = 0.5
MATCH_THRESHOLD = 0.25
STOP_WORDS = frozenset("""
a an the person someone somebody man woman human figure character he she they it its his her their them this that
is are was be being been and or then while with of to in on at by for from as into onto also slowly quickly
""".split())


# --------------------------------------------------------------------------- index time


def pooled_text_vectors(encoder, texts: list[str]) -> np.ndarray:
    """(N, D) float32: each text's token embeddings averaged and normalised (a sentence embedding)."""
    out = []
    for tokens, _ in encoder.encode_texts(texts):
        vector = np.asarray(tokens, np.float32).mean(axis=0) if len(tokens) else np.zeros(encoder.dim, np.float32)
        norm = float(np.linalg.norm(vector))
        out.append(vector / norm if norm > 0 else vector)
    return np.stack(out) if out else np.zeros((0, int(encoder.dim)), np.float32)


def encode_vector(vector: np.ndarray) -> str:
    """float16 little-endian, base64: 2 bytes a dimension in the clip's JSON record."""
    return base64.b64encode(np.asarray(vector, "<f2").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f2").astype(np.float32)


# --------------------------------------------------------------------------- words


def stem(word: str) -> str:
    """A crude English stem, enough to meet inflections of the same action word (no NLP package needed).

    >>> [stem(w) for w in ("sitting", "sits", "sit", "waves", "waving", "wave", "jumped", "dancing", "dance")]
    ['sit', 'sit', 'sit', 'wav', 'wav', 'wav', 'jump', 'danc', 'danc']
    """
    word = word.lower()
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiousl":
        word = word[:-1]  # sitt -> sit, runn -> run
    return word


def content_stems(text: str) -> set[str]:
    return {stem(w) for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 1 and w not in STOP_WORDS}


# --------------------------------------------------------------------------- search time


@dataclass
class LibraryText:
    """Per snapshot: every distinct text of each source, its stored vector and word stems, and which text each clip
    has. Each distinct text is scored once a query and its score gathered to the clips that share it. Why: takes
    share texts (labels most of all: a library has a few dozen, each on thousands of takes; names such as
    "take_001" in many folders), and scoring every clip read 1 KiB of vectors a take and passed over every take
    ten times a query: 12 ms a query at 100k windows (68k takes, tiled from 292 distinct ones, AMD EPYC)."""

    vectors: list[np.ndarray]  # per source: (distinct texts, D) float32, zero rows where no vector was stored
    postings: list[dict[str, np.ndarray]]  # per source: stem -> indices of the distinct texts holding it
    which: np.ndarray  # (S, clips) int64: each clip's distinct text of the source, or that source's count if none

    @classmethod
    def of(cls, clips: list[dict], dim: int) -> "LibraryText":
        distinct: list[dict[tuple, int]] = [{} for _ in SOURCES]
        vectors: list[list[np.ndarray]] = [[] for _ in SOURCES]
        postings: list[dict[str, list[int]]] = [{} for _ in SOURCES]
        which = np.full((len(SOURCES), len(clips)), -1, np.int64)  # -1: no such text, set to the sentinel below
        for i, clip in enumerate(clips):
            text = clip.get("text") or {}
            stored = clip.get("text_vectors") or {}
            for s, source in enumerate(SOURCES):
                if not text.get(source):
                    continue
                key = (text[source], stored.get(source))  # the vector is the text's, unless stored differently
                found = distinct[s].get(key)
                if found is None:
                    found = distinct[s][key] = len(vectors[s])
                    vector = decode_vector(stored[source]) if source in stored else None
                    vectors[s].append(vector if vector is not None and vector.shape == (dim,)
                                      else np.zeros(dim, np.float32))
                    for word in content_stems(text[source]):
                        postings[s].setdefault(word, []).append(found)
                which[s, i] = found
        for s, texts in enumerate(vectors):
            which[s][which[s] < 0] = len(texts)
        return cls([np.stack(v) if v else np.zeros((0, dim), np.float32) for v in vectors],
                   [{w: np.asarray(ids) for w, ids in p.items()} for p in postings], which)

    @property
    def empty(self) -> bool:
        return not any(len(v) for v in self.vectors)

    def scores(self, query_text: str, query_vector: np.ndarray) -> np.ndarray:
        """(clips, S) text scores in [0, 1] of one query (see the module docstring)."""
        out = np.zeros((self.which.shape[1], len(SOURCES)), np.float64)
        if self.empty:
            return out
        words = content_stems(query_text)
        query_vector = np.asarray(query_vector, np.float32)
        for s in range(len(SOURCES)):
            count = len(self.vectors[s])
            if not count:
                continue  # e.g. no take has labels: nothing to score
            found = np.zeros(count)
            for word in words:
                hits = self.postings[s].get(word)
                if hits is not None:
                    found[hits] += 1
            keywords = found / max(len(words), 1)
            # einsum, not BLAS: a BLAS product's float32 rounding of a row depends on where the row sits in the
            # matrix, so a shard (a slice of the takes) would score a take differently from the whole library and
            # break ties between equally named takes the other way (cluster.py must give the same results)
            cosine = np.einsum("ij,j->i", self.vectors[s], query_vector)
            semantic = np.clip((cosine - SEMANTIC_FLOOR) / (1.0 - SEMANTIC_FLOOR), 0.0, 1.0)
            by_text = np.append(np.maximum(keywords, semantic), 0.0)  # the last: clips without this source
            out[:, s] = by_text[self.which[s]]
        return out


def best_source(per_source: np.ndarray) -> np.ndarray:
    """(clips, S) text scores -> (clips,) each take's best source. Column by column: `max(axis=1)` over the
    two sources took ~170 us at 7k takes (numpy reduces a short inner axis row by row), this ~3 us."""
    return functools.reduce(np.maximum, per_source.T)


def library_text(snapshot, dim: int) -> LibraryText:
    """The snapshot's LibraryText, built once per snapshot (snapshots are immutable)."""
    cached = getattr(snapshot, "_library_text", None)
    if cached is None:
        cached = LibraryText.of(snapshot.clips, dim)
        snapshot._library_text = cached
    return cached


def pooled_query(tokens: np.ndarray) -> np.ndarray:
    vector = np.asarray(tokens, np.float32).mean(axis=0)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@dataclass
class Fusion:
    """What one query's fusion did: per clip text scores and the MaxSim top-k clips, for `matched`."""

    text: np.ndarray  # (clips, S)
    motion_top: set[int]  # clip indices MaxSim alone ranks in the top k


@dataclass(frozen=True)
class SearchedTakes:
    """The takes of the windows a search covers (`allowed`): each take's window count there and where its windows
    lie (positions into `allowed`, grouped by take). Built once per snapshot for an unfiltered search."""

    counts: np.ndarray  # (clips,) windows of each take among the searched ones
    has_windows: np.ndarray  # (clips,) bool: counts > 0
    order: np.ndarray  # positions into `allowed`, sorted by take (stable: ascending within a take)
    starts: np.ndarray  # (clips + 1,) where each take's positions begin in `order`

    @classmethod
    def of(cls, window_clips: np.ndarray, clip_count: int) -> "SearchedTakes":
        """From the take of every searched window (`snapshot.window_clip[allowed]`)."""
        counts = np.bincount(window_clips, minlength=clip_count)
        return cls(counts, counts > 0, np.argsort(window_clips, kind="stable"),
                   np.concatenate([[0], np.cumsum(counts)]))

    @classmethod
    def searched(cls, snapshot, allowed: np.ndarray) -> "SearchedTakes":
        if allowed is not snapshot.all_windows:
            return cls.of(snapshot.window_clip[allowed], len(snapshot.clips))
        cached = getattr(snapshot, "_searched_takes", None)
        if cached is None:  # snapshots are immutable
            cached = snapshot._searched_takes = cls.of(snapshot.window_clip, len(snapshot.clips))
        return cached

    def windows_of(self, takes: np.ndarray) -> np.ndarray:
        """Positions into `allowed` of the given takes' windows, ascending."""
        parts = [self.order[self.starts[take]:self.starts[take + 1]] for take in takes]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def fuse(searcher, snapshot, allowed: np.ndarray, scores: np.ndarray, token_sets, texts, weight: float,
         k: int, mode: str, alone=None) -> tuple[np.ndarray, list[Fusion | None], np.ndarray]:
    """Add weight * text score to each window's MaxSim (columns = queries); see the module docstring.
    `alone(q)`: query q's quantised batch for the rescue's exact scores (`search._QueryBatch.alone`), if at hand.

    Returns (fused scores, fusions, MaxSim alone): the last is `scores` itself, the windows re-scored for
    well-named takes written into it. Only the scored windows are visited (a two-stage search scores 5 % of
    them, at most 12,000; the others stay -inf either way): at 100k windows the passes over every window cost
    ~6 ms a query, at a million ~60.
    """
    fusions: list[Fusion | None] = [None] * scores.shape[1]
    if not weight or texts is None or len(allowed) == 0:
        return scores, fusions, scores
    table = library_text(snapshot, snapshot.reader.spec.dim)
    if table.empty:
        return scores, fusions, scores
    takes = SearchedTakes.searched(snapshot, allowed)
    plans: list[tuple[np.ndarray, np.ndarray] | None] = []  # per query: (scored positions, fused scores) or None
    for q, (tokens, text) in enumerate(zip(token_sets, texts)):
        per_source = table.scores(text, pooled_query(tokens))
        bonus = best_source(per_source)
        column = scores[:, q]
        scored = np.flatnonzero(np.isfinite(column))
        clips = snapshot.window_clip[allowed[scored]]
        fusions[q] = Fusion(per_source, _top_clips(clips, column[scored], k))
        if np.ptp(bonus[takes.has_windows]) == 0:
            plans.append(None)
            continue  # the same words for every searched take tell nothing: keep MaxSim exactly
        rescore = _rescued_windows(takes, clips, column, bonus, k)
        if len(rescore):  # two-stage: windows of well-named takes the pooled shortlist left out
            column[rescore] = searcher.score_windows([tokens], allowed[rescore], mode="exact", snapshot=snapshot,
                                                     queries=alone(q) if alone else None)[:, 0]
            scored = np.sort(np.concatenate((scored, rescore)))  # disjoint: the rescued were unscored
            clips = snapshot.window_clip[allowed[scored]]
        plans.append((scored, column[scored] + weight * bonus[clips]))
    if all(plan is None for plan in plans):
        return scores, fusions, scores
    fused = np.full_like(scores, -np.inf)
    for q, plan in enumerate(plans):
        if plan is None:
            fused[:, q] = scores[:, q]
        else:
            fused[plan[0], q] = plan[1]
    return fused, fusions, scores


def _rescued_windows(takes: SearchedTakes, clips: np.ndarray, column: np.ndarray, bonus: np.ndarray,
                     k: int) -> np.ndarray:
    """Positions of the windows to score exactly: the unscored windows (-inf: left out by the shortlist) of the k
    takes with the best text score among the takes that have such a window and a text score above 0.
    `clips`: the take of each scored window of `column`.

    Per take rather than per window (the window's text score is its take's): at a million windows the per-window
    gathers and the sort over every take cost ~30 ms a query."""
    has_missing = takes.counts > np.bincount(clips, minlength=len(takes.counts))
    named = np.flatnonzero(has_missing & (bonus > 0))
    if len(named) == 0:
        return np.zeros(0, np.int64)
    windows = takes.windows_of(named[_top_k_stable(bonus[named], k)])
    return windows[~np.isfinite(column[windows])]


def annotate(hits, fusion: Fusion | None, snapshot) -> None:
    """Set each hit's `matched` (see the module docstring); without fusion only the motion matched."""
    index = getattr(snapshot, "_clip_index", None)
    if index is None:
        index = {clip["clip_id"]: i for i, clip in enumerate(snapshot.clips)}
        snapshot._clip_index = index
    for hit in hits:
        if fusion is None:
            hit.matched = ["motion"]
            continue
        clip = index[hit.clip_id]
        found = ["motion"] if clip in fusion.motion_top else []
        found += [source for s, source in enumerate(SOURCES) if fusion.text[clip, s] >= MATCH_THRESHOLD]
        if not found:  # neither alone: its motion and a weaker text score together (see the module docstring)
            found = ["motion"] + [source for s, source in enumerate(SOURCES) if fusion.text[clip, s] > 0]
        hit.matched = found


def _top_clips(clips: np.ndarray, values: np.ndarray, k: int) -> set[int]:
    """The k clips with the best value of any of their windows (ties: the lower clip index first)."""
    finite = np.flatnonzero(np.isfinite(values))
    if len(finite) == 0:
        return set()
    clips, values = clips[finite], values[finite]
    order = np.argsort(clips, kind="stable")
    grouped = clips[order]
    starts = np.flatnonzero(np.concatenate([[True], grouped[1:] != grouped[:-1]]))
    best = np.maximum.reduceat(values[order], starts)  # each clip's best window, clips ascending
    return {int(c) for c in grouped[starts][_top_k_stable(best, k)]}


def _top_k_stable(values: np.ndarray, k: int) -> np.ndarray:
    """`np.argsort(-values, kind="stable")[:k]` (ties: the lower index first) without sorting every value:
    only those at or above the k-th best are sorted."""
    if len(values) <= k:
        return np.argsort(-values, kind="stable")
    kth = np.partition(values, len(values) - k)[len(values) - k]
    contenders = np.flatnonzero(values >= kth)  # ascending: a stable sort keeps the lower index first on ties
    return contenders[np.argsort(-values[contenders], kind="stable")[:k]]
