"""`mofind model calibrate`: fit `calibration.json` on Bandai validation takes, then report the flag on other queries.

Data (all from the validation split of `mofind.train`, takes the model never trained on):
  * library: the validation takes, indexed with the model (`mofind.index.build`, cached per model hash), and
    random sub-libraries of them in which some contents are absent, so that known words with nothing to match
    also count as wrong matches;
  * right/wrong matches: the top 10 takes of every calibration query in every sub-library; a result is right
    when its take shows the query's content (style is not required);
  * calibration queries: template captions sampled with a fixed seed (3 per content x style), a quarter of
    them with a phrase the model never learned appended (`calibration_queries.json` "modifiers": the motion
    still matches), and hand-written queries about motions no take shows ("outside", all wrong).
Report (never used to fit): `report_queries.json`, hand-written, checked here to share no query with calibration
or the null texts: 34 queries of motions no validation take shows (written outside the Bandai caption templates)
and 32 that a take shows (written inside them). Precision and recall are of `no_good_match` as a detector of
queries the library cannot answer; the report also counts, for the model at hand, the queries with and without
a word outside its vocabulary (`vocabulary.json`), and how often they were flagged.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mofind.model.vocabulary import Vocabulary

from .assess import MatchQuality
from .calibration import FEATURES, THRESHOLD, Calibration, fit_logistic, result_features
from .null import NullDistribution, load_null_texts, texts_sha256

CALIBRATION_QUERIES = Path(__file__).resolve().with_name("calibration_queries.json")
REPORT_QUERIES = Path(__file__).resolve().with_name("report_queries.json")
TOP = 10  # results per query that calibration sees
SUBSETS = 24  # random sub-libraries besides the whole validation library
CAPTIONS_PER_LABEL = 3
SEED = 0


@dataclass(frozen=True)
class Query:
    text: str
    content: str | None  # the Bandai content that shows it; None: no take does


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


# --------------------------------------------------------------------------- data
def validation_takes() -> tuple[list[Path], dict[str, str]]:
    """Paths of the Bandai validation takes (the training split's) and each path's content label."""
    from mofind.train.bandai import HELD_OUT, TEMPLATES, ensure_extracted
    from mofind.train.captions import CaptionTemplates
    from mofind.train.data import labelled_folder_segments, split_by_take

    templates = CaptionTemplates.load(TEMPLATES)
    segments, _ = labelled_folder_segments(ensure_extracted(), templates)
    _, validation = split_by_take(segments, held_out=HELD_OUT)
    paths = sorted({segment.path for segment in validation})
    contents = {str(segment.path.resolve()): segment.label_dict["content"] for segment in validation}
    return paths, contents


def calibration_queries(contents: list[str], styles: list[str]) -> list[Query]:
    """Template captions (fixed seed), some with an unlearned modifier, and the hand-written 'outside' queries."""
    from mofind.train.bandai import TEMPLATES
    from mofind.train.captions import CaptionTemplates

    templates = CaptionTemplates.load(TEMPLATES)
    extra = json.loads(CALIBRATION_QUERIES.read_text(encoding="utf-8"))
    rng = random.Random(SEED)
    queries = []
    for content in sorted(contents):
        queries.append(Query(templates.canonical({"content": content, "style": styles[0]}), content))
        for style in sorted(styles):
            for _ in range(CAPTIONS_PER_LABEL):
                text = templates.sample({"content": content, "style": style}, rng)
                if rng.random() < 0.25:
                    text = f"{text} {rng.choice(extra['modifiers'])}"
                queries.append(Query(text, content))
    queries += [Query(text, None) for text in extra["outside"]]
    unique = {normalise(q.text): q for q in queries}
    return list(unique.values())


def report_queries(calibration: list[Query], null_texts) -> list[Query]:
    """The report's hand-written queries, checked to share no query with calibration or the null bank.

    Which of them lie outside the trained vocabulary depends on the model (`flag_report` counts it); the file's
    "outside" queries were written outside the Bandai caption templates and show motions no Bandai take shows.
    """
    data = json.loads(REPORT_QUERIES.read_text(encoding="utf-8"))
    queries = [Query(text, None) for text in data["outside"]]
    queries += [Query(item["query"], item["content"]) for item in data["inside"]]
    used = {normalise(q.text) for q in calibration} | {normalise(t) for t in null_texts}
    clash = [q.text for q in queries if normalise(q.text) in used]
    if clash:
        raise ValueError(f"{REPORT_QUERIES}: queries also used for calibration or the null bank: {clash}")
    return queries


# --------------------------------------------------------------------------- scoring
def clip_scores(searcher, token_sets: list[np.ndarray]) -> np.ndarray:
    """(texts, clips) best window score of each text on each take of the searcher's snapshot (exact MaxSim)."""
    snapshot = searcher.snapshot
    windows = np.arange(snapshot.num_windows)
    scores = searcher.score_windows(token_sets, windows, mode="exact", snapshot=snapshot)  # (windows, texts)
    out = np.full((len(snapshot.clips), len(token_sets)), -np.inf)
    np.maximum.at(out, snapshot.window_clip, scores)
    return out.T


def sub_libraries(clip_contents: list[str], rng: np.random.Generator) -> list[np.ndarray]:
    """The whole library, then random ones holding some contents only, thinned to 30-100 % of their takes."""
    contents = sorted(set(clip_contents))
    labels = np.asarray(clip_contents)
    libraries = [np.arange(len(labels))]
    while len(libraries) <= SUBSETS:
        kept = rng.choice(contents, size=rng.integers(1, len(contents)), replace=False)
        members = np.flatnonzero(np.isin(labels, kept))
        members = members[rng.random(len(members)) < rng.uniform(0.3, 1.0)]
        if len(members) >= 5:
            libraries.append(members)
    return libraries


def examples(query_scores: np.ndarray, null_scores: np.ndarray, queries: list[Query], known: list[float],
             clip_contents: list[str], libraries: list[np.ndarray]):
    """Features and right/wrong labels of the top results of every query in every library."""
    labels = np.asarray(clip_contents)
    features, right = [], []
    for members in libraries:
        null = NullDistribution(tuple(null_scores[:, members].max(axis=1)))
        for q, query in enumerate(queries):
            scores = query_scores[q, members]
            top = np.argsort(-scores, kind="stable")[:TOP]
            features.append(result_features(scores[top], null, known[q]))
            right.append(labels[members[top]] == query.content)
    return np.concatenate(features), np.concatenate(right)


# --------------------------------------------------------------------------- flag evaluation
def flag_report(quality: MatchQuality, query_scores: np.ndarray, null_scores: np.ndarray, queries: list[Query],
                clip_contents: list[str]) -> dict:
    """How well no_good_match detects queries the library cannot answer, split by the model's vocabulary.

    A query should be flagged when no take of the library shows it (`content` None, or its content removed).
    Precision and recall are over all report queries on the whole validation library; `outside_*` / `inside_*`
    count the queries with / without a word outside this model's vocabulary.
    """
    from mofind.index.search import Hit

    labels = np.asarray(clip_contents)
    everything = np.arange(len(labels))

    def flagged(q: int, members: np.ndarray) -> tuple[bool, float, bool]:
        scores = query_scores[q, members]
        top = np.argsort(-scores, kind="stable")[:TOP]
        null = NullDistribution(tuple(null_scores[:, members].max(axis=1)))
        hits = [Hit(clip_id=str(i), source="", start_frame=0, end_frame=1, fps=20.0, score=float(scores[i]),
                    duration=1.0) for i in top]
        report = quality.assess_scores(queries[q].text, hits, null)
        return report.no_good_match, float(hits[0].confidence), bool(labels[members[top[0]]] == queries[q].content)

    rows = []
    for q, query in enumerate(queries):
        flag, confidence, top_right = flagged(q, everything)
        unknown = quality.vocabulary.unknown_words(query.text) if quality.vocabulary is not None else []
        row = {"query": query.text, "answerable": query.content is not None, "unknown_words": unknown,
               "flagged": flag, "top_confidence": round(confidence, 4), "top_right": top_right}
        if query.content is not None:
            row["flagged_without_content"] = flagged(q, np.flatnonzero(labels != query.content))[0]
        rows.append(row)
    should = [r for r in rows if not r["answerable"]]
    answerable = [r for r in rows if r["answerable"]]
    outside = [r for r in rows if r["unknown_words"]]
    inside = [r for r in rows if not r["unknown_words"]]
    true_pos = sum(r["flagged"] for r in should)
    false_pos = sum(r["flagged"] for r in answerable)
    return {
        "outside_queries": len(outside), "inside_queries": len(inside),
        "outside_flagged": sum(r["flagged"] for r in outside), "inside_flagged": sum(r["flagged"] for r in inside),
        "unanswerable_queries": len(should), "answerable_queries": len(answerable),
        "precision": round(true_pos / max(true_pos + false_pos, 1), 4),
        "recall": round(true_pos / max(len(should), 1), 4),
        "unanswerable_flagged": true_pos, "answerable_flagged": false_pos,
        "answerable_top1_right": sum(r["top_right"] for r in answerable),
        "answerable_flagged_when_content_absent": sum(r["flagged_without_content"] for r in answerable),
        "rows": rows,
    }


def brier(probabilities: np.ndarray, right: np.ndarray) -> float:
    return float(np.mean((np.asarray(probabilities) - np.asarray(right, float)) ** 2))


def reliability(probabilities: np.ndarray, right: np.ndarray, edges=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)) -> list:
    """Per confidence bin: how many results, their mean confidence, and the share that were right matches."""
    probabilities, right = np.asarray(probabilities), np.asarray(right, float)
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (probabilities >= low) & ((probabilities < high) if high < 1.0 else (probabilities <= high))
        if inside.any():
            rows.append({"bin": [low, high], "results": int(inside.sum()),
                         "mean_confidence": round(float(probabilities[inside].mean()), 4),
                         "right": round(float(right[inside].mean()), 4)})
    return rows


# --------------------------------------------------------------------------- the command
def calibrate(model_dir: str | Path, *, index_dir: str | Path | None = None, log=print) -> Calibration:
    """Fit and write `model_dir/calibration.json`; its `report` holds the flag's precision and recall."""
    from mofind.index.build import build_index
    from mofind.index.manifest import IndexSpec
    from mofind.index.search import Searcher
    from mofind.index.store import IndexReader
    from mofind.model.inference import Encoder
    from mofind.paths import cache_dir

    model_dir = Path(model_dir)
    encoder = Encoder.load(model_dir)
    vocabulary = Vocabulary.load(model_dir)
    if vocabulary is None:
        raise FileNotFoundError(f"{model_dir} has no vocabulary.json (write it with `mofind model vocabulary`)")
    paths, content_of = validation_takes()
    index_dir = Path(index_dir) if index_dir else cache_dir() / "quality-calibration" / encoder.model_hash
    log(f"indexing {len(paths)} validation takes into {index_dir} (once per model)")
    build_index(paths, index_dir, encoder, workers=1)
    searcher = Searcher(IndexReader.open(index_dir, IndexSpec.from_encoder(encoder)), encoder)
    clip_contents = [content_of[str(Path(clip["source"]).resolve())] for clip in searcher.snapshot.clips]

    styles = sorted({Path(p).stem.split("_")[2] for p in paths})
    queries = calibration_queries(sorted(set(clip_contents)), styles)
    null_texts = load_null_texts()
    reports = report_queries(queries, null_texts)
    log(f"scoring {len(queries)} calibration + {len(reports)} report queries + {len(null_texts)} null texts "
        f"on {len(clip_contents)} takes")
    encoded = encoder.encode_texts([q.text for q in queries + reports] + list(null_texts))
    scores = clip_scores(searcher, [tokens for tokens, _ in encoded])
    query_scores, report_scores = scores[:len(queries)], scores[len(queries):len(queries) + len(reports)]
    null_scores = scores[len(queries) + len(reports):]

    libraries = sub_libraries(clip_contents, np.random.default_rng(SEED))
    known = [vocabulary.known_fraction(q.text) for q in queries]
    features, right = examples(query_scores, null_scores, queries, known, clip_contents, libraries)
    coef, intercept = fit_logistic(features, right)
    calibration = Calibration(model_hash=encoder.model_hash, coef=coef, intercept=intercept, threshold=THRESHOLD,
                              null_bank=texts_sha256(null_texts))
    fitted = calibration.probability(features)
    calibration.details = {"fitted_on": {
        "takes": len(clip_contents), "libraries": len(libraries), "queries": len(queries),
        "queries_outside": sum(q.content is None for q in queries), "examples": int(len(right)),
        "right_matches": int(right.sum()), "brier": round(brier(fitted, right), 4),
        "features": list(FEATURES), "seed": SEED}}

    quality = MatchQuality(encoder, vocabulary, calibration)
    report = flag_report(quality, report_scores, null_scores, reports, clip_contents)
    report_known = [vocabulary.known_fraction(q.text) for q in reports]
    report_features, report_right = examples(report_scores, null_scores, reports, report_known, clip_contents,
                                             libraries[:1])
    report_probabilities = calibration.probability(report_features)
    report["brier_top10"] = round(brier(report_probabilities, report_right), 4)
    report["reliability_top10"] = reliability(report_probabilities, report_right)
    calibration.details["report"] = report
    path = calibration.save(model_dir)
    log(f"wrote {path}: coef {dict(zip(FEATURES, np.round(coef, 3)))}, intercept {intercept:.3f}")
    log(summary(report))
    return calibration


def summary(report: dict) -> str:
    return (f"no_good_match on {report['unanswerable_queries']} queries no validation take shows and "
            f"{report['answerable_queries']} that one does: precision {report['precision']:.3f}, recall "
            f"{report['recall']:.3f} (flagged {report['unanswerable_flagged']}/{report['unanswerable_queries']} and "
            f"{report['answerable_flagged']}/{report['answerable_queries']}); by this model's vocabulary: "
            f"{report['outside_flagged']}/{report['outside_queries']} queries with an unknown word flagged, "
            f"{report['inside_flagged']}/{report['inside_queries']} without; answerable queries flagged once their "
            f"content is removed from the library: {report['answerable_flagged_when_content_absent']}/"
            f"{report['answerable_queries']}; top-1 right: {report['answerable_top1_right']}/"
            f"{report['answerable_queries']}; Brier score of the top-10 confidences: {report['brier_top10']}")
