"""The ZeroMQ backend on a real loopback socket: every method, concurrency, fuzzing, jobs, security, signals.

The server runs the real index (synthetic BVH files encoded by the real encoder: the shipped model
when present, else the random compact model) and is driven by real DEALER/REQ sockets.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from fixtures.curve import make_keys
from fixtures.synthetic import write_action_library
from mofind.index.build import build_index
from mofind.index.encoders import weights_present
from mofind.index.search import Searcher
from mofind.index.similar import similar
from mofind.index.store import IndexReader
from mofind.server.handlers import Backend
from mofind.server.protocol import ERROR_CODES, Limits
from mofind.server.router import BindRefusedError, Security, Server, check_bind

REPO = Path(__file__).resolve().parents[2]
QUERIES = ["a person waves with the left hand", "someone walks forward", "raise both arms above the head"]


class Client:
    """A DEALER (or REQ) client with timeouts; replies are matched by id by the caller."""

    def __init__(self, context, endpoint: str, kind=zmq.DEALER, **curve):
        self.socket = context.socket(kind)
        self.socket.setsockopt(zmq.LINGER, 0)
        for name, value in curve.items():
            setattr(self.socket, name, value)
        self.socket.connect(endpoint)
        self.counter = 0

    def send(self, method: str, params=None, request_id=None) -> str:
        self.counter += 1
        request_id = request_id if request_id is not None else f"r{self.counter}"
        header = {"v": 1, "id": request_id, "method": method, "params": params or {}}
        self.socket.send_multipart([json.dumps(header).encode()])
        return request_id

    def send_raw(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def recv(self, timeout: float = 60.0):
        if not self.socket.poll(int(timeout * 1000)):
            raise TimeoutError("no reply")
        header, *frames = self.socket.recv_multipart()
        return json.loads(header), frames

    def call(self, method: str, params=None, timeout: float = 60.0):
        request_id = self.send(method, params)
        header, frames = self.recv(timeout)
        assert header["id"] == request_id
        return header, frames

    def close(self) -> None:
        self.socket.close(linger=0)


@pytest.fixture(scope="module")
def encoder():
    from mofind.model.inference import Encoder

    return Encoder.load() if weights_present() else Encoder.random("compact")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mocap")
    write_action_library(folder / "bandai", kinds=("bandai",), seconds=6.0)
    write_action_library(folder / "cmu", kinds=("cmu",), actions=("walk", "wave_left", "raise_both"), seconds=3.0)
    return folder


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    return make_keys(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def served(tmp_path_factory, library, encoder, keys):
    index = tmp_path_factory.mktemp("index")
    build_index([library], index, encoder, workers=0)
    backend = Backend(index, encoder, limits=Limits(max_request_bytes=64 * 1024),
                      library_roots=[tmp_path_factory.getbasetemp()])
    server = Server(backend, "tcp://127.0.0.1:0", workers=4, security=keys.security)
    endpoint = server.start()
    context = zmq.Context()
    yield backend, endpoint, context
    server.stop()
    server.join(30)
    backend.stop()
    context.term()


@pytest.fixture()
def client(served, keys):
    _, endpoint, context = served
    made = Client(context, endpoint, **keys.client_options)
    yield made
    made.close()


def expected_search(backend: Backend, query: str, k: int = 5) -> list[tuple[str, int, int]]:
    reader = IndexReader.open(backend.index_dir)
    hits = Searcher(reader, backend.encoder).search(query, k=k)
    return [(h.clip_id, h.start_frame, h.end_frame) for h in hits]


# -- every method ---------------------------------------------------------------------------------------
def test_ping_info_and_search(served, client):
    backend, _, _ = served
    header, _ = client.call("ping")
    assert header["ok"] and header["result"]["pong"] is True and header["result"]["protocol"] == 1
    header, _ = client.call("info")
    info = header["result"]
    assert info["index"]["clips"] == len(IndexReader.open(backend.index_dir)) == 12
    assert info["grid"] == list(backend.spec.grid) and len(info["part_names"]) == backend.spec.grid[1]
    assert info["warm"] is False  # this backend was started without `mofind serve`'s warming thread
    backend.warm()
    assert client.call("info")[0]["result"]["warm"] is True
    header, frames = client.call("search", {"query": QUERIES[0], "k": 5})
    results = header["result"]["results"]
    assert [(r["clip_id"], r["start_frame"], r["end_frame"]) for r in results] == expected_search(backend, QUERIES[0])
    from PIL import Image

    for result in results:
        assert {"clip_id", "source", "start_frame", "end_frame", "fps", "score", "duration", "labels",
                "thumbnail"} <= set(result)
        png = frames[result["thumbnail"]["$frame"]]
        assert Image.open(io.BytesIO(png)).format == "PNG"
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    quality = header["result"]["quality"]
    assert {"no_good_match", "unknown_words", "message"} <= set(quality)
    assert all(0.0 <= r["confidence"] <= 1.0 for r in results)
    assert quality["top_confidence"] == max(r["confidence"] for r in results)


def test_search_reply_says_when_nothing_matches_and_names_the_unknown_words(served, client):
    backend, _, _ = served
    if backend.quality.vocabulary is None:
        pytest.skip("the model folder has no vocabulary.json")
    for query, unknown in (("xyzzy plugh frobnicate", ["xyzzy", "plugh", "frobnicate"]),
                           ("a person does a cartwheel", ["cartwheel"])):
        header, _ = client.call("search", {"query": query, "k": 3, "thumbnails": False})
        quality = header["result"]["quality"]
        assert quality["no_good_match"] is True and quality["unknown_words"] == unknown, quality
        assert quality["message"].startswith("No good match in this library: the model has not learned")
        assert all(r["confidence"] < quality["threshold"] for r in header["result"]["results"])
    header, _ = client.call("search", {"query": "raise both arms", "k": 3, "thumbnails": False,
                                       "filters": {"label": "no-such-label"}})
    assert header["result"]["results"] == [] and header["result"]["quality"]["no_good_match"] is True


def test_search_names_weight_and_matched_sources(served, client):
    backend, _, _ = served
    reader = IndexReader.open(backend.index_dir)
    for weight in (0.0, 1.0):
        header, _ = client.call("search", {"query": "walk", "k": 3, "names_weight": weight, "thumbnails": False})
        hits = Searcher(reader, backend.encoder).search("walk", k=3, names_weight=weight)
        results = header["result"]["results"]
        assert [(r["clip_id"], r["matched"]) for r in results] == [(h.clip_id, h.matched) for h in hits]
    assert Path(results[0]["source"]).stem.endswith("_walk") and "name" in results[0]["matched"]
    for bad in (-0.5, "1", True, 11):
        header, _ = client.call("search", {"query": "walk", "names_weight": bad})
        assert header["error"]["code"] == "BAD_REQUEST", bad


def test_search_filters_and_per_take(served, client):
    header, _ = client.call("search", {"query": QUERIES[1], "k": 20, "filters": {"skeleton": "cmu_bvh"},
                                       "thumbnails": False})
    results = header["result"]["results"]
    assert len(results) == 3 and all(r["source"].endswith(".bvh") and "/cmu/" in r["source"] for r in results)
    assert all(r["thumbnail"] is None for r in results)
    header, _ = client.call("search", {"query": QUERIES[1], "k": 2, "per_take": 3, "names_weight": 0})
    results = header["result"]["results"]
    takes = {r["clip_id"] for r in results}
    reader = IndexReader.open(served[0].index_dir)
    assert len(takes) == 2 and len(results) == sum(min(3, len(reader.windows(c))) for c in takes) >= 4


def test_explain_matrix_and_tokens(served, client):
    backend, _, _ = served
    clip_id = expected_search(backend, QUERIES[2], k=1)[0][0]
    header, frames = client.call("explain", {"query": QUERIES[2], "clip_id": clip_id})
    result = header["result"]
    matrix_ref = result["matrix"]
    matrix = np.frombuffer(frames[matrix_ref["$frame"]], dtype="<f4").reshape(matrix_ref["shape"])
    rows, cols = result["grid"]
    assert matrix.shape == (len(result["tokens"]), rows * cols)
    best = np.nanmax(matrix, axis=1)
    assert [t["similarity"] for t in result["tokens"]] == pytest.approx(best.tolist(), abs=1e-5)
    assert result["score"] == pytest.approx(float(best.mean()), abs=1e-5)
    record = IndexReader.open(backend.index_dir).clip(clip_id)
    for token in result["tokens"]:
        assert token["part"] == result["part_names"][token["col"]]
        assert 0 <= token["t_start"] < token["t_end"] <= record.duration + 1e-6


def test_similar_matches_the_library_function(served, client):
    backend, _, _ = served
    reader = IndexReader.open(backend.index_dir)
    clip_id = reader.clip_ids()[0]
    header, _ = client.call("similar", {"clip_id": clip_id, "k": 4})
    expected = [h.clip_id for h in similar(Searcher(reader), clip_id, k=4)]
    assert [r["clip_id"] for r in header["result"]["results"]] == expected
    assert clip_id not in expected


def test_get_motion_returns_the_original_take(served, client):
    from mofind.io import load_motion

    backend, _, _ = served
    reader = IndexReader.open(backend.index_dir)
    record = next(r for r in reader.clips() if r.source.endswith("bandai_wave_left.bvh"))
    header, frames = client.call("get_motion", {"clip_id": record.clip_id, "start_frame": 30, "end_frame": 90})
    result = header["result"]
    motion = load_motion(record.source)
    rotations = np.frombuffer(frames[result["rotations"]["$frame"]], "<f4").reshape(result["rotations"]["shape"])
    np.testing.assert_array_equal(rotations, motion.local_rotations[30:90])
    root = np.frombuffer(frames[result["root_translation"]["$frame"]], "<f4").reshape(-1, 3)
    np.testing.assert_array_equal(root, motion.root_translation[30:90])
    assert result["skeleton"]["names"] == motion.skeleton.names
    assert result["fps"] == 30.0 and (result["start_frame"], result["end_frame"]) == (30, 90)
    assert result["up_axis"] == motion.mapping["up_axis"] and result["unit_scale"] == motion.mapping["unit_scale"]
    assert result["smpl_to_source"] == motion.mapping["smpl_to_source"]
    if motion.joint_translations is not None:
        ref = result["joint_translations"]
        assert ref["shape"] == [60, len(motion.skeleton.names), 3]
    header, _ = client.call("get_motion", {"clip_id": record.clip_id})  # default: the whole take
    assert (header["result"]["start_frame"], header["result"]["end_frame"]) == tuple(record.frame_range)


@pytest.mark.parametrize("params, code", [
    ({"clip_id": "0123456789abcdef"}, "NOT_FOUND"),
    ({"path": "/etc/passwd"}, "BAD_REQUEST"),  # never an arbitrary path
    ({"clip_id": "x", "path": "/etc/passwd"}, "BAD_REQUEST"),
])
def test_get_motion_serves_only_indexed_clips(client, params, code):
    header, _ = client.call("get_motion", params)
    assert not header["ok"] and header["error"]["code"] == code


def test_get_motion_rejects_frames_outside_the_take(served, client):
    backend, _, _ = served
    record = IndexReader.open(backend.index_dir).clips()[0]
    header, _ = client.call("get_motion", {"clip_id": record.clip_id, "start_frame": record.frame_range[1] + 5})
    assert header["error"]["code"] == "BAD_REQUEST"
    header, _ = client.call("get_motion", {"clip_id": record.clip_id, "start_frame": 10, "end_frame": 5})
    assert header["error"]["code"] == "BAD_REQUEST"


def test_req_socket_clients_work_too(served, keys):
    _, endpoint, context = served
    req = Client(context, endpoint, kind=zmq.REQ, **keys.client_options)
    try:
        header, _ = req.call("ping")
        assert header["ok"]
    finally:
        req.close()


# -- concurrency ----------------------------------------------------------------------------------------
def test_eight_concurrent_clients_each_get_their_own_correct_answers(served, keys):
    backend, endpoint, context = served
    reader = IndexReader.open(backend.index_dir)
    expected = {q: expected_search(backend, q) for q in QUERIES}
    clip_ids = reader.clip_ids()
    expected_similar = {c: [h.clip_id for h in similar(Searcher(reader), c, k=3)] for c in clip_ids[:3]}
    record = reader.clip(clip_ids[4])
    errors: list[str] = []

    def check(request, header, frames) -> None:
        kind, arg = request
        if kind == "search":
            got = [(r["clip_id"], r["start_frame"], r["end_frame"]) for r in header["result"]["results"]]
            if got != expected[arg]:
                errors.append(f"search {arg!r}: {got} != {expected[arg]}")
        elif kind == "similar":
            got = [r["clip_id"] for r in header["result"]["results"]]
            if got != expected_similar[arg]:
                errors.append(f"similar {arg}: {got}")
        elif kind == "ping" and header["result"] != {"pong": True, "version": header["result"]["version"],
                                                     "protocol": 1}:
            errors.append(f"ping: {header}")
        elif kind == "info" and header["result"]["index"]["clips"] != len(clip_ids):
            errors.append(f"info: {header['result']['index']}")
        elif kind == "motion" and header["result"]["rotations"]["shape"][0] != 20:
            errors.append(f"get_motion: {header['result']['rotations']}")
        elif kind == "bad" and header["error"]["code"] != "BAD_REQUEST":
            errors.append(f"bad request answered {header}")

    def run(seed: int) -> None:
        rng = random.Random(seed)
        client = Client(context, endpoint, **keys.client_options)
        in_flight: dict[str, tuple] = {}
        try:
            for n in range(100):
                kind = rng.choice(["search", "search", "similar", "ping", "info", "motion", "bad"])
                arg = rng.choice(QUERIES) if kind == "search" else rng.choice(clip_ids[:3])
                params = {"search": {"query": arg, "k": 5}, "similar": {"clip_id": arg, "k": 3}, "ping": {},
                          "info": {}, "bad": {"query": 42},
                          "motion": {"clip_id": record.clip_id, "start_frame": 0, "end_frame": 20}}[kind]
                method = {"motion": "get_motion", "bad": "search"}.get(kind, kind)
                request_id = client.send(method, params, request_id=f"t{seed}-{n}")
                in_flight[request_id] = (kind, arg)
                while len(in_flight) >= 4 or (n == 99 and in_flight):  # pipeline up to 4 requests
                    header, frames = client.recv()
                    request = in_flight.pop(header["id"], None)
                    if request is None:
                        errors.append(f"reply to an unknown id {header['id']!r}")
                        continue
                    if request[0] != "bad" and not header["ok"]:
                        errors.append(f"{request}: {header['error']}")
                        continue
                    check(request, header, frames)
        except Exception as exc:  # noqa: BLE001 - collected and asserted in the main thread
            errors.append(f"client {seed}: {exc!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


# -- robustness -----------------------------------------------------------------------------------------
def fuzz_cases(rng: random.Random, limits: Limits) -> list[tuple[list[bytes], set[str], object]]:
    """(frames, acceptable error codes, expected id) for a thousand malformed requests."""
    def header(method="search", params=None, **over):
        data = {"v": 1, "id": f"f{rng.randrange(10**9)}", "method": method, "params": params or {}}
        data.update(over)
        return data

    bad_values = [None, True, -1, 0, 1.5, 10**12, "", "x" * 5000, [], [1, "a"], {}, {"a": 1}, "nonexistent"]
    fields = {
        "search": ["query", "k", "filters", "per_take", "mode", "thumbnails"],
        "explain": ["query", "clip_id", "start_frame"],
        "similar": ["clip_id", "k", "start_frame", "filters", "mode"],
        "get_motion": ["clip_id", "start_frame", "end_frame"],
        "index_add": ["paths", "recursive"],
        "index_status": ["job_id"], "index_remove": ["clip_ids", "path_prefix"], "cancel": ["job_id"],
    }
    valid = {"search": {"query": "walk"}, "explain": {"query": "walk", "clip_id": "0" * 16},
             "similar": {"clip_id": "0" * 16}, "get_motion": {"clip_id": "0" * 16},
             "index_add": {"paths": ["/nonexistent/folder"]}, "index_status": {}, "index_remove": {"clip_ids": []},
             "cancel": {"job_id": "nope"}}
    cases = []
    errors = set(ERROR_CODES) - {"INTERNAL"}
    while len(cases) < 1000:
        choice = rng.randrange(9)
        if choice == 0:
            blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            cases.append(([blob], {"BAD_JSON", "BAD_REQUEST"}, None))
        elif choice == 1:
            text = json.dumps(header())
            cases.append(([text[: rng.randrange(1, len(text))].encode()], {"BAD_JSON"}, None))
        elif choice == 2:
            cases.append(([json.dumps(rng.choice([[], 3, "x", None, [header()]])).encode()], {"BAD_REQUEST"}, None))
        elif choice == 3:
            h = header()
            key = rng.choice(["v", "id", "method", "params"])
            h[key] = rng.choice([v for v in bad_values if v != h[key]] + [2])
            expected_id = h["id"] if isinstance(h["id"], str) and len(h["id"]) <= 128 or (
                isinstance(h["id"], int) and not isinstance(h["id"], bool) and abs(h["id"]) < 2**63) else None
            cases.append(([json.dumps(h).encode()], errors, expected_id))
        elif choice == 4:
            method = rng.choice(list(fields))
            params = dict(valid[method])
            params[rng.choice(fields[method])] = rng.choice(bad_values)
            h = header(method, params)
            cases.append(([json.dumps(h).encode()], errors | {"OK"}, h["id"]))
        elif choice == 5:
            h = header(rng.choice(["Search", "delete_everything", "__init__", "x" * 60, "eval"]))
            cases.append(([json.dumps(h).encode()], {"UNKNOWN_METHOD", "BAD_REQUEST"}, h["id"]))
        elif choice == 6:
            h = header("search", {"query": "walk", "extra": 1})
            cases.append(([json.dumps(h).encode()], {"BAD_REQUEST"}, h["id"]))
        elif choice == 7:
            h = header("ping")
            frames = [json.dumps(h).encode()] + [b"x"] * rng.randrange(limits.max_frames, limits.max_frames + 5)
            if rng.random() < 0.3:
                frames = [json.dumps(header("search", {"query": "w" * (limits.max_request_bytes + 10)})).encode()]
                h = json.loads(frames[0])
            cases.append((frames, {"TOO_LARGE"}, h["id"]))
        else:
            deep = "[" * 100_000 + "]" * 100_000 if rng.random() < 0.5 else '{"v": NaN, "id": "n"}'
            cases.append(([deep.encode()], {"BAD_JSON", "TOO_LARGE"}, None))
    return cases


def test_a_thousand_malformed_requests_all_get_error_replies_and_the_server_keeps_serving(served, client):
    backend, _, _ = served
    rng = random.Random(1234)
    cases = fuzz_cases(rng, backend.limits)
    for start in range(0, len(cases), 25):
        batch = cases[start:start + 25]
        for frames, _, _ in batch:
            client.send_raw(frames)
        replies = [client.recv() for _ in batch]
        by_id = {}
        anonymous = []
        for header, _ in replies:
            assert header["v"] == 1
            (by_id.setdefault(header["id"], []) if header["id"] is not None else anonymous).append(header)
        for frames, codes, expected_id in batch:
            if expected_id is None:
                continue
            header = by_id[expected_id].pop()
            code = "OK" if header["ok"] else header["error"]["code"]
            assert code in codes, (frames[0][:200], header)
            if not header["ok"]:
                assert header["error"]["message"]
        for header in anonymous:
            assert not header["ok"] and header["error"]["code"] in ERROR_CODES
    header, _ = client.call("search", {"query": QUERIES[0], "k": 5})
    assert [(r["clip_id"], r["start_frame"], r["end_frame"]) for r in header["result"]["results"]] == \
        expected_search(backend, QUERIES[0])


def test_oversize_messages(served, client, keys):
    backend, endpoint, context = served
    header, _ = client.call("search", {"query": "walk " * 20_000})
    assert header["error"]["code"] == "TOO_LARGE"
    brute = Client(context, endpoint, **keys.client_options)
    try:  # beyond the socket cap the connection is dropped without reading the message into memory
        brute.send_raw([b"{" + b" " * (backend.limits.socket_max_bytes + 10) + b"}"])
        with pytest.raises(TimeoutError):
            brute.recv(timeout=1.0)
    finally:
        brute.close()
    assert client.call("ping")[0]["ok"]


# -- background jobs ------------------------------------------------------------------------------------
def test_index_add_runs_in_the_background_while_searches_are_answered(served, client, tmp_path):
    backend, _, _ = served
    folder = tmp_path / "new"
    for seed in range(3):
        write_action_library(folder / f"s{seed}", kinds=("bandai",), seconds=4.0, seed=10 + seed)
    before = client.call("info")[0]["result"]["index"]["clips"]
    header, _ = client.call("index_add", {"paths": [str(folder)]})
    job_id = header["result"]["job_id"]
    answered_while_running = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.call("index_status", {"job_id": job_id})[0]["result"]["jobs"][0]
        if job["state"] in ("done", "failed", "cancelled"):
            break
        if job["state"] == "running":
            reply = client.call("search", {"query": QUERIES[1], "k": 3, "thumbnails": False})[0]
            assert reply["ok"]
            answered_while_running += 1
    assert job["state"] == "done" and job["failed"] == [] and job["done"] == job["total"] == 27
    assert answered_while_running > 0
    header, _ = client.call("index_status")
    assert header["result"]["clips"] == before + 27
    # new clips are searchable at once, then removable by prefix
    header, _ = client.call("search", {"query": QUERIES[0], "k": 50, "filters": {"path_prefix": str(folder)}})
    assert len(header["result"]["results"]) == 27
    header, _ = client.call("index_remove", {"path_prefix": str(folder)})
    assert header["result"]["removed"] == 27
    assert client.call("info")[0]["result"]["index"]["clips"] == before


def test_cancel_and_unknown_jobs(served, client, tmp_path):
    folder = tmp_path / "many"
    for seed in range(4):
        write_action_library(folder / f"s{seed}", kinds=("cmu",), seconds=3.0, seed=seed)
    job_id = client.call("index_add", {"paths": [str(folder)]})[0]["result"]["job_id"]
    assert client.call("cancel", {"job_id": job_id})[0]["result"]["cancelled"] is True
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.call("index_status", {"job_id": job_id})[0]["result"]["jobs"][0]
        if job["state"] != "running" and job["state"] != "queued":
            break
        time.sleep(0.05)
    assert job["state"] == "cancelled" and job["done"] < 36
    assert client.call("cancel", {"job_id": "nope"})[0]["error"]["code"] == "NOT_FOUND"
    assert client.call("index_status", {"job_id": "nope"})[0]["error"]["code"] == "NOT_FOUND"
    assert client.call("index_add", {"paths": ["relative/dir"]})[0]["error"]["code"] == "BAD_REQUEST"
    # clean up whatever the cancelled job committed
    client.call("index_remove", {"path_prefix": str(folder)})


def test_index_remove_is_busy_while_another_writer_holds_the_index(served, client):
    from mofind.index.store import IndexWriter

    backend, _, _ = served
    with IndexWriter(backend.index_dir, backend.spec):
        header, _ = client.call("index_remove", {"clip_ids": ["0123456789abcdef"]})
    assert header["error"]["code"] == "BUSY" and "retry" in header["error"]["message"]
    header, _ = client.call("index_remove", {"clip_ids": ["0123456789abcdef"]})
    assert header["result"] == {"removed": 0}
    header, _ = client.call("index_remove", {"clip_ids": ["x"], "path_prefix": "/"})
    assert header["error"]["code"] == "BAD_REQUEST"


def test_clients_cannot_remove_clips_outside_the_library_roots(served, tmp_path):
    backend, _, _ = served
    strict = Backend(backend.index_dir, backend.encoder, library_roots=[tmp_path])  # the library lies outside
    clip_id = IndexReader.open(backend.index_dir).clip_ids()[0]

    def call(method, params):
        return json.loads(strict.handle([json.dumps({"v": 1, "id": 1, "method": method, "params": params})
                                         .encode()])[0])
    try:
        for params in ({"clip_ids": [clip_id]}, {"path_prefix": "/"}, {"path_prefix": str(tmp_path / "..")}):
            reply = call("index_remove", params)
            assert reply["error"]["code"] == "FORBIDDEN" and "library_roots" in reply["error"]["message"], reply
        assert call("index_remove", {"clip_ids": ["0123456789abcdef"]})["result"] == {"removed": 0}
        assert call("index_remove", {"path_prefix": str(tmp_path)})["result"] == {"removed": 0}
        reply = call("index_add", {"paths": [str(tmp_path / ".." / "elsewhere")]})
        assert reply["error"]["code"] == "FORBIDDEN"
        assert clip_id in IndexReader.open(backend.index_dir)
    finally:
        strict.stop()


# -- security -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bind", ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://192.168.1.20:5555",
                                  "tcp://example.com:5555", "tcp://[::]:5555"])
def test_non_loopback_binds_are_refused_without_curve_or_insecure(bind):
    with pytest.raises(BindRefusedError, match="CurveZMQ"):
        check_bind(bind, Security())
    warnings = check_bind(bind, Security(insecure=True))
    assert warnings and "unencrypted" in warnings[0]


@pytest.mark.parametrize("bind", ["tcp://127.0.0.1:5555", "tcp://localhost:5555", "tcp://[::1]:5555",
                                  "ipc:///tmp/mofind.sock"])
def test_loopback_binds_need_keys_too_unless_insecure(bind, keys):
    with pytest.raises(BindRefusedError, match="without authentication"):
        check_bind(bind, Security())
    assert check_bind(bind, keys.security) == []
    warnings = check_bind(bind, Security(insecure=True))
    assert warnings and "every local user" in warnings[0]


def test_a_bracketed_ipv4_bind_is_a_clear_refusal():
    with pytest.raises(BindRefusedError, match="cannot be read"):
        check_bind("tcp://[127.0.0.1]:5555", Security(insecure=True))


def test_curve_server_answers_enrolled_clients_only_and_reads_enrolments_live(tmp_path, served):
    from mofind.server.keys import KeyStore, create_certificates, load_public_key

    backend, _, _ = served
    store = KeyStore(tmp_path / "curve")
    assert store.ensure() and not store.ensure()  # made once
    good_public, good_secret = create_certificates(tmp_path / "good", "good")
    late_public, late_secret = create_certificates(tmp_path / "late", "late")
    store.allow(load_public_key(good_public), "good")
    server = Server(backend, "tcp://127.0.0.1:0", workers=1,
                    security=Security(store.server_secret_file, store.clients_dir))
    endpoint = server.start()
    context = zmq.Context()
    server_public = store.server_public_key().encode()

    def answers(secret_file=None, timeout=10.0) -> bool:
        import zmq.auth

        options = {}
        if secret_file is not None:
            public, secret = zmq.auth.load_certificate(str(secret_file))
            options = {"curve_publickey": public, "curve_secretkey": secret, "curve_serverkey": server_public}
        client = Client(context, endpoint, **options)
        try:
            return client.call("ping", timeout=timeout)[0]["ok"]
        except TimeoutError:
            return False
        finally:
            client.close()

    try:
        assert answers(good_secret)
        assert not answers(late_secret, timeout=1.5)  # a valid key pair that is not enrolled
        assert not answers(None, timeout=1.5)  # no key at all (plain ZMTP on loopback)
        enrolled = store.allow(load_public_key(late_public), "late")  # while the server runs
        assert answers(late_secret)
        enrolled.unlink()  # revoked: its next connection is refused
        assert not answers(late_secret, timeout=1.5)
    finally:
        server.stop()
        server.join(10)
        context.term()
    with pytest.raises(BindRefusedError, match="--curve-clients"):
        check_bind("tcp://0.0.0.0:5555", Security(store.server_secret_file, None))


def test_key_files_are_owner_only_and_a_readable_secret_is_refused(tmp_path, served):
    import stat

    from mofind.server.keys import KeyStore

    store = KeyStore(tmp_path / "config" / "curve")
    store.ensure()
    mode = lambda path: stat.S_IMODE(path.stat().st_mode)  # noqa: E731
    assert mode(store.root) == 0o700 and mode(store.clients_dir) == 0o700
    assert mode(store.server_secret_file) == 0o600
    store.server_secret_file.chmod(0o644)
    server = Server(served[0], "tcp://127.0.0.1:0", workers=1,
                    security=Security(store.server_secret_file, store.clients_dir))
    with pytest.raises(BindRefusedError, match="chmod 600"):
        server.start()


# -- the real command -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_serve_command_creates_the_default_index_and_stops_cleanly_on_sigterm(tmp_path, library):
    import stat

    from mofind.server.keys import KeyStore, create_certificates, load_public_key

    port = free_port()
    index, config = tmp_path / "default-index", tmp_path / "config"
    env = {**os.environ, "MOFIND_TEST_RANDOM_MODEL": "1", "MOFIND_INDEX": str(index), "MOFIND_CONFIG": str(config),
           "PYTHONPATH": str(REPO / "backend")}
    process = subprocess.Popen([sys.executable, "-m", "mofind.cli", "serve", "--bind", f"tcp://127.0.0.1:{port}",
                                "--library-root", str(library)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = KeyStore(config / "curve")  # made by the server on its first start, owner-only
    deadline = time.monotonic() + 120
    while not store.server_public_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stat.S_IMODE(store.server_secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    public, secret = create_certificates(tmp_path / "me", "me")
    store.allow(load_public_key(public), "me")  # what the add-on does for a server of the same user
    import zmq.auth

    public_key, secret_key = zmq.auth.load_certificate(str(secret))
    context = zmq.Context()
    client = Client(context, f"tcp://127.0.0.1:{port}", curve_publickey=public_key, curve_secretkey=secret_key,
                    curve_serverkey=store.server_public_key().encode())
    try:
        header, _ = client.call("ping", timeout=120)
        assert header["ok"]
        assert client.call("info")[0]["result"]["index"]["clips"] == 0  # created empty on first run
        refused = client.call("index_add", {"paths": [str(tmp_path)]})[0]["error"]
        assert refused["code"] == "FORBIDDEN" and "--library-root" in refused["message"]
        job_id = client.call("index_add", {"paths": [str(library)]})[0]["result"]["job_id"]
        deadline = time.monotonic() + 120
        while client.call("index_status", {"job_id": job_id})[0]["result"]["jobs"][0]["done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)  # mid-job
        out, err = process.communicate(timeout=60)
    finally:
        client.close()
        context.term()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "mofind index" in out and f"tcp://127.0.0.1:{port}" in out  # how to index and connect
    assert store.server_public_key() in out  # what a remote client needs
    assert "stopped" in err
    reader = IndexReader.open(index)  # intact after the signal
    assert 1 <= len(reader) <= 12  # the clips finished before the signal were committed


def test_a_library_that_changes_under_the_server_is_warmed_again_in_the_background(tmp_path, library, encoder):
    """The request that notices a commit starts a background warm: the new chunk gets the unpacked cache of a
    small library (its re-ranks read it) without that request waiting for it."""
    index = tmp_path / "index"
    build_index([library / "bandai"], index, encoder, workers=0)
    backend = Backend(index, encoder)
    try:
        backend.warm()
        searcher = backend.searcher
        kernel = searcher.kernel.name
        before = {scan.chunk.name for scan in searcher.snapshot.scans}
        assert before and all(searcher.cache.whole(name, kernel) is not None for name in before)
        build_index([library / "cmu"], index, encoder, workers=0)  # a commit: one more chunk
        assert backend.search({"query": QUERIES[0], "k": 3, "thumbnails": False})[0]["results"]
        deadline = time.monotonic() + 60
        while backend._rewarm_thread is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        names = {scan.chunk.name for scan in searcher.snapshot.scans}
        assert names > before
        assert all(searcher.cache.whole(name, kernel) is not None for name in names)
    finally:
        backend.stop()
