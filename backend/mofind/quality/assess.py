"""Match quality of one search: a confidence per result and an honest "no good match in this library" flag.

`MatchQuality.assess(searcher, query, hits)` fills each hit's `confidence` (the calibrated probability that its
motion is a right match, `quality.calibration`, from its MaxSim alone: names fused into the ranking score by
`index.text_match` are not evidence the calibration or the null bank saw) and returns a `QualityReport` whose `to_dict()` is the `quality`
object of `mofind query --json` and of the protocol's search reply:

    {"no_good_match": true, "unknown_words": ["cartwheel"], "known_fraction": 0.5, "top_confidence": 0.03,
     "calibrated": true, "threshold": 0.5, "null": {"texts": 60, "mean": 0.24, "std": 0.02, "p95": 0.27},
     "message": "No good match in this library: the model has not learned 'cartwheel'.", "relaxed": null}

`no_good_match` is true when there is no result, when the model knows none of the query's content words, when
the best result scores no better than unrelated text (at or below the null bank's 95th percentile), or when
the best result's confidence is below the calibration's threshold (0.5). `relaxed` is set when the results
answer the prompt with a word or two left out (`quality.relax`): {"query", "left_out", "prompt_confidence"}.
Without a `calibration.json` fitted for this model the confidence falls back to an uncalibrated estimate (the
share of null texts the result beats, times the known-word fraction) and `calibrated` is false.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mofind.model.vocabulary import Vocabulary, content_words

from .calibration import THRESHOLD, Calibration, result_features
from .null import NullDistribution, NullModel

log = logging.getLogger(__name__)


@dataclass
class QualityReport:
    no_good_match: bool
    unknown_words: list[str]
    message: str
    top_confidence: float | None = None
    known_fraction: float | None = None  # None when the model folder has no vocabulary
    calibrated: bool = False
    threshold: float = THRESHOLD
    null: dict | None = None
    confidences: list[float] = field(default_factory=list)
    relaxed: dict | None = None  # the results answer the prompt with words left out (quality.relax)

    def to_dict(self) -> dict:
        return {"no_good_match": self.no_good_match, "unknown_words": list(self.unknown_words),
                "message": self.message,
                "top_confidence": None if self.top_confidence is None else round(self.top_confidence, 4),
                "known_fraction": None if self.known_fraction is None else round(self.known_fraction, 4),
                "calibrated": self.calibrated, "threshold": self.threshold, "null": self.null,
                "relaxed": self.relaxed}


def quoted(words: list[str]) -> str:
    items = [f"'{word}'" for word in words]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class MatchQuality:
    """Vocabulary + calibration + null model of one encoder: everything `assess` needs."""

    def __init__(self, encoder, vocabulary: Vocabulary | None = None, calibration: Calibration | None = None, *,
                 null_model: NullModel | None = None, text_lock: threading.Lock | None = None,
                 background: bool = False):
        """`background`: a changed library is judged against its previous null distribution while the new one
        is computed in a thread (`NullModel`; for the server)."""
        self.encoder = encoder
        self.vocabulary = vocabulary
        self.null_model = null_model or NullModel(encoder, text_lock=text_lock, background=background)
        self.calibration = None
        self.note = ""
        if calibration is None:
            self.note = "uncalibrated: run `mofind model calibrate --model DIR`"
        elif calibration.model_hash != encoder.model_hash:
            self.note = (f"uncalibrated: calibration.json was fitted for model {calibration.model_hash}, not "
                         f"{encoder.model_hash}; run `mofind model calibrate --model DIR` again")
            log.warning("ignoring %s", self.note)
        elif calibration.null_bank and calibration.null_bank != self.null_model.bank_sha:
            self.note = "uncalibrated: the null texts changed since calibration; run `mofind model calibrate` again"
        else:
            self.calibration = calibration

    @classmethod
    def for_model(cls, encoder, model_dir: str | Path | None = None, *, text_lock: threading.Lock | None = None,
                  background: bool = False) -> "MatchQuality":
        """Read `vocabulary.json` and `calibration.json` from the model folder (default: the shipped one)."""
        if model_dir is None:
            from mofind.paths import model_dir as default_model_dir

            model_dir = default_model_dir()
        return cls(encoder, Vocabulary.load(model_dir), Calibration.load(model_dir), text_lock=text_lock,
                   background=background)

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    def assess(self, searcher, query: str, hits: list, filters=None, mode: str = "auto",
               snapshot=None) -> QualityReport:
        """Set `hit.confidence` on every hit and say whether the best one is a good match."""
        null = self.null_model.distribution(searcher, filters, mode, snapshot) if hits else None
        return self.assess_scores(query, hits, null)

    def assess_scores(self, query: str, hits: list, null: NullDistribution | None) -> QualityReport:
        """`assess` with the library's null distribution already known (None: nothing could be searched)."""
        unknown = self.vocabulary.unknown_words(query) if self.vocabulary is not None else []
        known = self.vocabulary.known_fraction(query) if self.vocabulary is not None else None
        if not hits or null is None:
            return QualityReport(True, unknown, "No takes to search: the library (or the filters) leave none.",
                                 known_fraction=known, calibrated=self.calibrated)
        # the motion's own MaxSim: names fused into the ranking score are evidence the null bank never sees
        scores = [hit.score if hit.motion_score is None else hit.motion_score for hit in hits]
        confidences = self.confidences(scores, null, 1.0 if known is None else known)
        for hit, confidence in zip(hits, confidences):
            hit.confidence = float(confidence)
        top = float(max(confidences))
        knows_nothing = known == 0.0 and bool(content_words(query))
        like_null = max(scores) <= null.high
        low = top < self.threshold
        flagged = knows_nothing or like_null or low
        by_name = any(set(getattr(hit, "matched", ())) & {"name", "label"} for hit in hits)
        return QualityReport(no_good_match=flagged, unknown_words=unknown,
                             message=self._message(flagged, unknown, like_null, top, by_name),
                             top_confidence=top, known_fraction=known, calibrated=self.calibrated,
                             threshold=self.threshold, null=null.summary(), confidences=list(confidences))

    @property
    def threshold(self) -> float:
        return self.calibration.threshold if self.calibration is not None else THRESHOLD

    def confidences(self, scores, null: NullDistribution, known_fraction: float) -> np.ndarray:
        """Probability that each result is a right match (calibrated), or the uncalibrated fallback."""
        if self.calibration is not None:
            return self.calibration.probability(result_features(scores, null, known_fraction))
        beaten = (np.asarray(null.tops)[None, :] < np.asarray(scores, np.float64)[:, None]).mean(axis=1)
        return beaten * known_fraction

    def _message(self, flagged: bool, unknown: list[str], like_null: bool, top: float, by_name: bool) -> str:
        note = f" ({self.note})" if self.note else ""
        if flagged:
            if unknown:
                reason = f"the model has not learned {quoted(unknown)}"
            elif like_null:
                reason = "the best take scores no better than unrelated text"
            else:
                reason = f"the best take is unlikely to show this (confidence {top:.2f})"
            names = " Some takes match by their name or labels only: check them." if by_name else ""
            return f"No good match in this library: {reason}.{names}{note}"
        text = f"Best match confidence {top:.2f}."
        if unknown:
            text += f" The model has not learned {quoted(unknown)}, so the results ignore what that means."
        return text + note
