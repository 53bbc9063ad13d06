"""Which `Encoder` the index commands use: the shipped weights, or (tests only) a random compact model.

The random model is reachable only through the environment variable MOFIND_TEST_RANDOM_MODEL=1 and
only when the model folder holds no weights, so a user can never search with it by accident.
"""

from __future__ import annotations

import os
from pathlib import Path

RANDOM_MODEL_ENV = "MOFIND_TEST_RANDOM_MODEL"
WEIGHTS_FILE = "weights.safetensors"


class ModelUnavailableError(RuntimeError):
    """No usable model weights were found."""


def weights_present(model_dir: str | Path | None = None) -> bool:
    return (_resolve(model_dir) / WEIGHTS_FILE).is_file()


def load_encoder(model_dir: str | Path | None = None, device: str = "cpu", text_precision: str = "auto"):
    """`Encoder.load(model_dir)`; falls back to `Encoder.random("compact")` only under the test switch."""
    from mofind.model.inference import Encoder

    folder = _resolve(model_dir)
    if weights_present(folder):
        return Encoder.load(folder, device=device, text_precision=text_precision)
    if os.environ.get(RANDOM_MODEL_ENV) == "1":
        return Encoder.random("compact", device=device, text_precision=text_precision)
    raise ModelUnavailableError(
        f"no model weights in {folder} (expected {WEIGHTS_FILE}); pass --model DIR or set MOFIND_MODEL "
        "to a folder written by `mofind train`")


def _resolve(model_dir: str | Path | None) -> Path:
    if model_dir is None:
        from mofind.paths import model_dir as default_model_dir

        return default_model_dir()
    return Path(model_dir)
