"""`mofind index` and `mofind query --json` as a user runs them: real subprocesses, real files.

The model is the shipped one when model_weights/ holds it; otherwise the hidden test switch
MOFIND_TEST_RANDOM_MODEL=1 lets the commands use the random compact model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.synthetic import write_action_library
from mofind.index.store import IndexReader

REPO = Path(__file__).resolve().parents[2]
REQUIRED = {"clip_id": str, "source": str, "start_frame": int, "end_frame": int, "fps": float, "score": float,
            "confidence": float}


def mofind(*args, check=True, env_server=None, config=None):
    env = {**os.environ, "MOFIND_TEST_RANDOM_MODEL": "1", "PYTHONPATH": str(REPO / "backend")}
    if env_server:
        env["MOFIND_SERVER"] = env_server
    if config:
        env["MOFIND_CONFIG"] = str(config)
    return subprocess.run([sys.executable, "-m", "mofind.cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300, check=check)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    library = root / "mocap"
    files = write_action_library(library, kinds=("bandai", "cmu"), actions=("walk", "wave_left", "raise_both"),
                                 seconds=5.0)
    (library / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")
    result = mofind("index", library, "--index", root / "index", "--workers", "0", "--json", check=False)
    return root / "index", files, result


def test_index_command_reports_json_and_failed_files(indexed):
    index, files, result = indexed
    assert result.returncode == 1  # one file failed, the rest is indexed
    report = json.loads(result.stdout)
    assert report["indexed"] == len(files) and report["skipped"] == 0
    assert [f["path"] for f in report["failed"]] == [str((index.parent / "mocap" / "broken.bvh").resolve())]
    assert "broken.bvh" in report["failed"][0]["error"]
    assert len(IndexReader.open(index)) == len(files)


def test_query_json_shape(indexed):
    index, files, _ = indexed
    result = mofind("query", "a person waves the left hand", "--index", index, "-k", "4", "--json")
    payload = json.loads(result.stdout)
    assert list(payload) == ["results", "quality"]
    quality = payload["quality"]
    assert isinstance(quality["no_good_match"], bool) and quality["unknown_words"] == []
    assert isinstance(quality["message"], str) and quality["message"]
    assert quality["relaxed"] is None or set(quality["relaxed"]) == {"query", "left_out", "prompt_confidence"}
    results = payload["results"]
    confidences = [r["confidence"] for r in results]
    assert all(0.0 <= c <= 1.0 for c in confidences) and quality["top_confidence"] == max(confidences)
    assert len(results) == 4 and len({r["clip_id"] for r in results}) == 4
    reader = IndexReader.open(index)
    for item in results:
        for key, kind in REQUIRED.items():
            assert isinstance(item[key], kind), key
        record = reader.clip(item["clip_id"])
        assert item["source"] == record.source and item["fps"] == record.source_fps
        assert record.frame_range[0] <= item["start_frame"] < item["end_frame"] <= record.frame_range[1]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)


def test_query_filters_and_text_output(indexed):
    index, _, _ = indexed
    result = mofind("query", "walking", "--index", index, "-k", "10", "--skeleton", "cmu_bvh", "--json")
    sources = [r["source"] for r in json.loads(result.stdout)["results"]]
    assert len(sources) == 3 and all(Path(s).name.startswith("cmu_") for s in sources)
    text = mofind("query", "walking", "--index", index, "-k", "2").stdout
    lines = text.splitlines()
    assert len(lines) == 3 and all("frames" in line and "confidence" in line for line in lines[1:])
    assert lines[0].startswith(("Best match confidence", "No good match"))


def test_query_says_when_nothing_in_the_library_matches(indexed):
    index, _, _ = indexed
    payload = json.loads(mofind("query", "xyzzy plugh frobnicate", "--index", index, "-k", "3", "--json").stdout)
    quality = payload["quality"]
    assert quality["no_good_match"] is True and quality["unknown_words"] == ["xyzzy", "plugh", "frobnicate"]
    assert "No good match in this library" in quality["message"] and "'xyzzy'" in quality["message"]
    assert len(payload["results"]) == 3  # still listed (the user may look), each with its low confidence
    text = mofind("query", "a person does a cartwheel", "--index", index, "-k", "1").stdout
    assert text.splitlines()[0] == "No good match in this library: the model has not learned 'cartwheel'."


def test_query_errors_are_clear(tmp_path, indexed):
    result = mofind("query", "walk", "--index", tmp_path / "missing", "--json", check=False)
    assert result.returncode == 2 and "not a MoFind index" in result.stderr and result.stdout == ""
    index, _, _ = indexed
    result = mofind("query", "   ", "--index", index, check=False)
    assert result.returncode == 2 and "non-empty" in result.stderr


@pytest.mark.slow
def test_query_asks_a_running_server_for_the_same_index(indexed):
    """A real `mofind serve` on the index (CurveZMQ keys required, as by default): the CLI enrols its own key
    like the add-on, its answer comes from the server (no torch imported) and equals the in-process answer;
    a server for another index is not used; a named server that is down is an error."""
    import socket
    import time

    index, _, _ = indexed
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    config = index.parent / "config"
    env = {**os.environ, "MOFIND_TEST_RANDOM_MODEL": "1", "PYTHONPATH": str(REPO / "backend"),
           "MOFIND_CONFIG": str(config)}
    server = subprocess.Popen([sys.executable, "-m", "mofind.cli", "serve", "--index", str(index), "--bind", endpoint],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while "listening on" not in server.stdout.readline():
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
        args = ("query", "a person waves the left hand", "--index", index, "-k", "4", "--json")
        local = json.loads(mofind(*args, "--no-server", config=config).stdout)
        remote = subprocess.run([sys.executable, "-X", "importtime", "-m", "mofind.cli", *map(str, args),
                                 "--server", endpoint], env=env, capture_output=True, text=True, timeout=120, check=True)
        imported = {line.split("|")[-1].strip() for line in remote.stderr.splitlines() if line.startswith("import time")}
        assert "zmq" in imported and not {"torch", "transformers", "numpy"} & imported  # the server answered
        assert json.loads(remote.stdout) == local
        floating = json.loads(mofind(*args, "--no-server", "--text-precision", "fp32", config=config).stdout)
        scores = [hit["score"] for hit in local["results"]]
        assert [hit["score"] for hit in floating["results"]] != scores  # the default is int8, not float32
        strict = mofind(*args, "--no-relax", "--server", endpoint, config=config)
        assert json.loads(strict.stdout)["quality"]["relaxed"] is None  # the server took the field
        assert (config / "curve" / "clients" / "mofind-cli.key").is_file()  # enrolled once, like the add-on
        # the default address is found through MOFIND_SERVER, and only for the index it serves
        found = mofind(*args, env_server=endpoint, config=config)
        assert json.loads(found.stdout) == local
        other = mofind("query", "a person waves the left hand", "--index", index.parent / "elsewhere", "--json",
                       env_server=endpoint, config=config, check=False)
        assert other.returncode == 2 and "elsewhere" in other.stderr  # searched in-process: no such index
    finally:
        server.terminate()
        server.wait(60)
    down = mofind(*args, "--server", endpoint, config=config, check=False)
    assert down.returncode == 2 and "no answer" in down.stderr
