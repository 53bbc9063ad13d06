"""`mofind train` then `mofind eval` end to end on real BVH files (procedural takes) with a template file."""

from __future__ import annotations

import json

import pytest

from fixtures.synthetic import write_action_bvh
from mofind.cli import main
from test_train import TINY_MODEL

ACTIONS = {"walk": "walks forward", "wave_left": "waves the left hand", "raise_both": "raises both arms",
           "turn_right": "turns to the right"}


@pytest.fixture()
def library(tmp_path, monkeypatch):
    monkeypatch.setenv("MOFIND_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "takes"
    folder.mkdir()
    for i, action in enumerate(ACTIONS):
        for take in range(3):
            write_action_bvh(folder / f"studio_{action}_{take:03d}.bvh", "bandai", action, seconds=1.6,
                             seed=10 * i + take)
    templates = tmp_path / "templates.json"
    templates.write_text(json.dumps({
        "pattern": "studio_(?P<action>[a-z_]+)_\\d+",
        "shared": {"person": ["a person", "someone"]},
        "phrases": {"action": {name: {"verb": [verb]} for name, verb in ACTIONS.items()}},
        "templates": ["{person} {action_verb}"],
    }))
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"model": TINY_MODEL, "epochs": 2, "batch_size": 4, "warmup_steps": 0,
                                  "device": "cpu", "lr": 1e-3, "lr_motion": 1e-3}))
    return folder, templates, config


@pytest.mark.slow
def test_train_then_eval_with_global_baseline(library, tmp_path, capsys):
    folder, templates, config = library
    run = tmp_path / "run"
    args = ["--data", str(folder), "--templates", str(templates), "--out", str(run), "--config", str(config),
            "--workers", "1", "--quiet"]
    assert main(["train", *args]) == 0
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert "all" in history[0]["val"]
    assert (run / "model" / "weights.safetensors").is_file() and (run / "state.pt").is_file()

    # running the same command again resumes: nothing left to do, history unchanged
    assert main(["train", *args]) == 0
    assert len((run / "history.jsonl").read_text().splitlines()) == 2

    assert main(["eval", "--model", str(run / "model"), "--data", str(folder), "--templates", str(templates),
                 "--protocols", "all", "--global-baseline", "--workers", "1", "--quiet"]) == 0
    report = json.loads((run / "model" / "eval.json").read_text())
    assert report["split"] == "val" and report["items"] == 4 and report["distinct_captions"] == 4
    assert set(report["results"]) == {"maxsim", "global"}
    for scoring in ("maxsim", "global"):
        metrics = report["results"][scoring]["all"]
        assert 0 <= metrics["t2m_r1"] <= 100 and metrics["t2m_r5"] == 100.0  # 4 items: everything is in the top 5
        assert 1.0 <= metrics["m2t_medr"] <= 4.0
    table = (run / "model" / "eval.md").read_text()
    assert "| MaxSim / all |" in table and "| Global (mean-pooled) / all |" in table
    assert "T2M R@1" in capsys.readouterr().out
    # what query encoding runs in: measured on this machine (`auto`), said in both reports
    assert report["text_precision"] in ("int8", "fp16", "fp32") and f"text tower {report['text_precision']}" in table

    assert main(["eval", "--model", str(run / "model"), "--data", str(folder), "--templates", str(templates),
                 "--protocols", "all", "--workers", "1", "--quiet", "--text-precision", "fp32",
                 "--out", str(tmp_path / "float")]) == 0
    assert json.loads((tmp_path / "float" / "eval.json").read_text())["text_precision"] == "fp32"


def test_bad_data_spec_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="not 'bandai'"):
        main(["train", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "run")])
    with pytest.raises(ValueError, match="needs --templates"):
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run")])


@pytest.mark.slow
def test_an_unlabelled_folder_trains_on_describer_captions(library, tmp_path):
    """A studio library without labels: `--describe` captions random windows with the kinematic describer; the
    vocabulary file lists the describer's words and the validation items are its canonical sentences."""
    folder, _, config = library
    run = tmp_path / "described"
    assert main(["train", "--data", str(folder), "--describe", "--out", str(run), "--config", str(config),
                 "--workers", "1", "--quiet"]) == 0
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2] and "all" in history[0]["val"]
    vocabulary = json.loads((run / "model" / "vocabulary.json").read_text())
    assert set(vocabulary["sources"]) == {"describer"}
    assert {"waves", "left", "hand"} & set(vocabulary["words"])
