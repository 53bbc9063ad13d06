"""`mofind model import-official`: the paper's checkpoint format, converted, used end to end by the product.

Uses the tiny reference checkpoint (official format, random weights) of ../shared/reference/motioncolbert: the
imported folder must reproduce the official pipeline's vectors, and `mofind index`, `mofind query` and the
server (search, explain, similar) must run on it with `--model`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures.synthetic import write_action_library

pytestmark = pytest.mark.needs_shared
REPO = Path(__file__).resolve().parents[2]


def mofind(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(REPO / "backend")}
    env.pop("MOFIND_TEST_RANDOM_MODEL", None)  # the imported folder must be what runs
    return subprocess.run([sys.executable, "-m", "mofind.cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300, check=check)


@pytest.fixture(scope="module")
def imported(tmp_path_factory, reference_dir) -> Path:
    out = tmp_path_factory.mktemp("official") / "model"
    result = mofind("model", "import-official", reference_dir / "tiny_model" / "motioncolbert_tiny.pt",
                    "--stats", reference_dir / "stats", "--out", out, "--config", "official-tiny",
                    "--tokenizer", reference_dir / "tokenizer", "--dtype", "float32")
    assert "use it with: mofind index|query|serve --model" in result.stdout
    return out


def test_imported_folder_reproduces_the_official_vectors(imported, reference_dir):
    from mofind.model.inference import Encoder

    encoder = Encoder.load(imported)
    assert encoder.config.name == "official-tiny" and not encoder.uses_patch_mask
    ref = dict(np.load(reference_dir / "outputs" / "motion_012314_first60.npz"))
    (patches, _), = encoder.encode_motions([np.load(reference_dir / "inputs" / "joints_012314_first60.npy")])
    np.testing.assert_allclose(patches, ref["patch_emb"], atol=2e-3)  # the angle tolerance of the features
    provenance = json.loads((imported / "provenance.json").read_text())
    assert "CC BY-NC 4.0" in provenance["licence"] and len(provenance["checkpoint_sha256"]) == 64


def test_import_refuses_bad_input_clearly(tmp_path, reference_dir):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    result = mofind("model", "import-official", bad, "--stats", reference_dir / "stats", "--out", tmp_path / "m",
                    check=False)
    assert result.returncode == 2 and "bad.pt" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("user data")
    result = mofind("model", "import-official", reference_dir / "tiny_model" / "motioncolbert_tiny.pt",
                    "--stats", reference_dir / "stats", "--out", tmp_path / "full", check=False)
    assert result.returncode == 2 and "not empty" in result.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "user data"


@pytest.mark.slow
def test_index_query_and_serve_use_the_imported_model(imported, tmp_path):
    from mofind.index.search import Searcher
    from mofind.index.store import IndexReader
    from mofind.model.inference import Encoder
    from mofind.server.handlers import Backend

    library = tmp_path / "mocap"
    write_action_library(library, kinds=("bandai",), actions=("walk", "wave_left", "raise_both"), seconds=4.0)
    index = tmp_path / "index"
    report = json.loads(mofind("index", library, "--index", index, "--model", imported, "--workers", "0",
                               "--json").stdout)
    assert report["indexed"] == 3
    encoder = Encoder.load(imported)
    reader = IndexReader.open(index)
    assert reader.spec.model_hash == encoder.model_hash  # the index remembers the imported model

    payload = json.loads(mofind("query", "a person waves", "--index", index, "--model", imported, "-k", "3",
                                "--json").stdout)
    expected = [h.clip_id for h in Searcher(reader, encoder).search("a person waves", k=3)]
    assert [r["clip_id"] for r in payload["results"]] == expected
    refused = mofind("query", "a person waves", "--index", index, "-k", "3", check=False)  # shipped model
    assert refused.returncode == 2 and "model" in refused.stderr.lower()

    from fixtures.curve import make_keys, serving

    with serving(Backend(index, encoder), make_keys(Path(index).parent / "config")) as call:
        def result(method, params):
            header = call(method, params)
            assert header["ok"], header
            return header["result"]

        results = result("search", {"query": "a person waves", "k": 3, "thumbnails": False})["results"]
        assert [r["clip_id"] for r in results] == expected
        explained = result("explain", {"query": "a person waves", "clip_id": expected[0]})
        assert explained["grid"] == list(encoder.grid) and explained["tokens"]
        similar = result("similar", {"clip_id": expected[0], "k": 2})["results"]
        assert similar and expected[0] not in [r["clip_id"] for r in similar]
