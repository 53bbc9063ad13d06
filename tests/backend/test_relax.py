"""Relaxed prompts (`mofind.quality.relax`): when no take shows the whole prompt, the closest takes of the prompt
with a misfit word left out, said as such.

The word rules always run. The search tests use the shipped model on a real library of Bandai *validation* takes
(never trained on) in one style only, so that a prompt naming another style has no take that shows all of it;
they read ../shared and are skipped when it is absent. Nothing is mocked: the variants are encoded, searched and
assessed by the real `Backend.search` handler, as a ZeroMQ request would be.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mofind.quality.relax import MAX_LEFT_OUT, allowance, leave_out, spare_words

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "model_weights"
STYLE = "active"  # the library's only style; the prompts below name another one


def test_words_left_out_are_known_content_words_written_on_their_own():
    assert spare_words("An old man raises both hands slowly") == ["old", "man", "raises", "hands", "slowly"]
    assert spare_words("an old man does a cartwheel", unknown=["cartwheel"]) == ["old", "man"]
    assert spare_words("a person waves the left-hand quickly") == ["person", "waves", "quickly"]  # not half a word
    assert spare_words("a tired woman raises the left arm up") == ["tired", "woman", "raises", "arm"]  # spatial
    assert leave_out("An old man, slowly, raises both hands.", "slowly") == "An old man, raises both hands."
    assert leave_out("an old man raises both hands", "Old".lower()) == "an man raises both hands"


def test_one_word_may_go_per_three_content_words_and_never_more_than_two():
    assert allowance("a drunk man walks") == 1
    assert allowance("a man walks") == 0  # nothing to spare
    assert allowance("an old man raises both hands slowly") == 1  # old man raises hands slowly: five
    assert allowance("an old man raises both hands slowly and waves") == 2
    assert allowance("an angry old man quickly raises the left hand slowly then waves it") == MAX_LEFT_OUT


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    if not (MODEL_DIR / "weights.safetensors").is_file():
        pytest.skip("model_weights/ holds no shipped weights")
    from mofind.index.build import build_index
    from mofind.model.inference import Encoder
    from mofind.server.handlers import Backend
    from mofind.train import bandai
    from mofind.train.captions import CaptionTemplates
    from mofind.train.data import labelled_folder_segments, split_by_take

    try:
        folder = bandai.ensure_extracted()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    segments, _ = labelled_folder_segments(folder, CaptionTemplates.load(bandai.TEMPLATES))
    _, validation = split_by_take(segments, held_out=bandai.HELD_OUT)  # as the shipped model was trained
    root = tmp_path_factory.mktemp("relax")
    picked: dict[str, int] = {}
    for segment in validation:
        labels = segment.label_dict
        if labels.get("style") == STYLE and picked.get(labels["content"], 0) < 2:
            picked[labels["content"]] = picked.get(labels["content"], 0) + 1
            (root / "mocap").mkdir(exist_ok=True)
            shutil.copy(segment.path, root / "mocap" / segment.path.name)
    assert len(picked) >= 8, picked  # every content of the archive, in the one style
    encoder = Encoder.load(MODEL_DIR)
    build_index([root / "mocap"], root / "index", encoder, workers=0)
    made = Backend(root / "index", encoder, model_dir=MODEL_DIR)
    yield made
    made.stop()


def search(backend, query: str, **params) -> dict:
    result, _ = backend.search({"query": query, "k": 5, "thumbnails": False, "names_weight": 0.0, **params})
    return result


def content_of(hit: dict) -> str:
    return hit["labels"][0]


@pytest.mark.needs_shared
def test_a_style_the_library_lacks_is_left_out_and_said_so(backend):
    prompt = "an elderly person waves both hands"
    plain = search(backend, prompt, relax=False)
    assert plain["quality"]["no_good_match"] and plain["quality"]["relaxed"] is None
    assert content_of(plain["results"][0]) != "wave-both-hands"  # the style word pulled the prompt elsewhere

    relaxed = search(backend, prompt)
    quality = relaxed["quality"]
    assert quality["relaxed"]["left_out"] == ["elderly"], quality
    assert quality["no_good_match"], "nothing claims a take shows the whole prompt"
    assert "'elderly'" in quality["message"] and "leave out" in quality["message"]
    assert quality["relaxed"]["prompt_confidence"] == pytest.approx(plain["quality"]["top_confidence"], abs=1e-4)
    assert quality["top_confidence"] >= quality["relaxed"]["prompt_confidence"] + 0.1
    assert [content_of(hit) for hit in relaxed["results"][:2]] == ["wave-both-hands"] * 2
    assert relaxed["results"][0]["confidence"] == pytest.approx(quality["top_confidence"], abs=1e-4)


@pytest.mark.needs_shared
def test_good_matches_and_unlearned_actions_are_never_relaxed(backend):
    matched = search(backend, "a person waves both hands")
    assert not matched["quality"]["no_good_match"] and matched["quality"]["relaxed"] is None
    unknown = search(backend, "an elderly person does a cartwheel")
    quality = unknown["quality"]
    assert quality["no_good_match"] and "cartwheel" in quality["unknown_words"]
    assert quality["relaxed"] is None or "cartwheel" not in quality["relaxed"]["left_out"]
    assert "'cartwheel'" in quality["message"]


@pytest.mark.needs_shared
def test_the_command_line_relaxes_as_the_server_does(backend):
    """`mofind query` in-process (its own encoder and searcher) gives the handler's relaxed answer, and
    `--no-relax` the prompt's own."""
    import json
    import os
    import subprocess
    import sys

    prompt = "an elderly person waves both hands"
    env = {**os.environ, "PYTHONPATH": str(REPO / "backend")}

    def query(*extra):
        done = subprocess.run([sys.executable, "-m", "mofind.cli", "query", prompt, "--index", str(backend.index_dir),
                               "--model", str(MODEL_DIR), "--no-server", "-k", "5", "--names-weight", "0", "--json",
                               *extra], env=env, capture_output=True, text=True, timeout=300, check=True)
        return json.loads(done.stdout)

    for extra, relax in (((), True), (("--no-relax",), False)):
        found, served = query(*extra), search(backend, prompt, relax=relax)
        assert [hit["clip_id"] for hit in found["results"]] == [hit["clip_id"] for hit in served["results"]]
        assert found["quality"]["relaxed"] == served["quality"]["relaxed"]
        assert found["quality"]["message"] == served["quality"]["message"]


@pytest.mark.needs_shared
def test_relax_is_a_validated_protocol_field(backend):
    from mofind.server.protocol import ProtocolError

    with pytest.raises(ProtocolError, match="relax"):
        backend.search({"query": "a person walks", "relax": "yes"})
