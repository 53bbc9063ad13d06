"""`calibration.json`: the probability that a result is a right match, as a logistic (Platt) function of features.

Features of one result (all comparable across libraries and queries, unlike the raw score):
  * `null_z`: the result's score in standard deviations above the null mean (unrelated text, same library);
  * `known_fraction`: the share of the query's content words the model was trained on (`model.vocabulary`);
  * `gap_to_top`: the result's score minus the query's best score (0 for the first result), in null stds.
The weights are fitted on validation data by `mofind model calibrate` (see `mofind.quality.fit`); the file
records the model hash it was fitted for, so a re-trained model is never judged with a stale fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CALIBRATION_FILE = "calibration.json"
FEATURES = ("null_z", "known_fraction", "gap_to_top")
THRESHOLD = 0.5  # no_good_match when the best result's probability of being a right match is below this


def result_features(scores, null, known_fraction: float) -> np.ndarray:
    """(n, len(FEATURES)) features of a query's results, best first (`null`: a NullDistribution)."""
    scores = np.asarray(scores, np.float64)
    if scores.size == 0:
        return np.zeros((0, len(FEATURES)))
    z = null.z(scores)
    return np.stack([z, np.full_like(z, known_fraction), z - z.max()], axis=1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


@dataclass
class Calibration:
    """A fitted logistic model over `FEATURES` for one model (by hash)."""

    model_hash: str
    coef: tuple[float, ...]
    intercept: float
    threshold: float = THRESHOLD
    null_bank: str = ""  # sha256 prefix of the null texts the features were computed with
    features: tuple[str, ...] = FEATURES
    details: dict = field(default_factory=dict)  # what it was fitted on, and how well it did

    def probability(self, features: np.ndarray) -> np.ndarray:
        return sigmoid(np.asarray(features, np.float64) @ np.asarray(self.coef) + self.intercept)

    def to_dict(self) -> dict:
        return {"version": 1, "model_hash": self.model_hash, "features": list(self.features),
                "coef": [round(float(c), 6) for c in self.coef], "intercept": round(float(self.intercept), 6),
                "threshold": self.threshold, "null_bank": self.null_bank, **self.details}

    @classmethod
    def from_dict(cls, data: dict, source: str = "calibration") -> "Calibration":
        try:
            features = tuple(data["features"])
            if features != FEATURES:
                raise ValueError(f"features {list(features)} are not this MoFind's {list(FEATURES)}")
            coef = tuple(float(c) for c in data["coef"])
            if len(coef) != len(FEATURES):
                raise ValueError("one coefficient per feature expected")
            details = {k: v for k, v in data.items() if k not in
                       ("version", "model_hash", "features", "coef", "intercept", "threshold", "null_bank")}
            return cls(model_hash=str(data["model_hash"]), coef=coef, intercept=float(data["intercept"]),
                       threshold=float(data.get("threshold", THRESHOLD)), null_bank=str(data.get("null_bank", "")),
                       details=details)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: malformed calibration ({exc})") from None

    @classmethod
    def load(cls, model_dir: str | Path) -> "Calibration | None":
        """The model folder's calibration, or None when it has none."""
        path = Path(model_dir) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        return cls.from_dict(data, str(path))

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / CALIBRATION_FILE
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path


def fit_logistic(features: np.ndarray, labels: np.ndarray, c: float = 1.0) -> tuple[tuple[float, ...], float]:
    """Platt scaling: an L2-regularised logistic regression (scikit-learn's, deterministic lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, int)
    if len(set(labels.tolist())) < 2:
        raise ValueError("calibration needs both right and wrong matches")
    model = LogisticRegression(C=c, max_iter=1000).fit(np.asarray(features, np.float64), labels)
    return tuple(float(v) for v in model.coef_[0]), float(model.intercept_[0])
