"""The server's memory budget on a real socket: --max-memory sizes, TOO_LARGE naming the limit, the largest
requests the protocol allows staying inside their estimate (watched through the process's peak RSS),
`info` saying which kernel runs and what memory is promised; `--device` refusing CUDA where there is none."""

from __future__ import annotations

import json

import pytest
import zmq

from fixtures.synthetic import write_action_library
from mofind.index.build import build_index
from mofind.server.handlers import Backend
from mofind.server.memory import MemoryBudget, default_max_memory, machine_memory, parse_size, rss_bytes
from mofind.server.router import Security, Server


def call(sock, method, params=None):
    sock.send_multipart([json.dumps({"v": 1, "id": method, "method": method, "params": params or {}}).encode()])
    assert sock.poll(120_000), "no reply"
    return json.loads(sock.recv_multipart()[0])


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from mofind.model.inference import Encoder

    encoder = Encoder.random("compact")
    library = tmp_path_factory.mktemp("mocap")
    write_action_library(library, kinds=("bandai",), actions=("walk", "wave_left", "raise_both"), seconds=6.0)
    folder = tmp_path_factory.mktemp("index")
    build_index([library], folder, encoder, workers=0)
    return folder, encoder


def serve(folder, encoder, max_memory):
    backend = Backend(folder, encoder, max_memory=max_memory, workers=2)
    server = Server(backend, "tcp://127.0.0.1:0", workers=2, security=Security(insecure=True))
    endpoint = server.start()
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return backend, server, sock


def stop(backend, server, sock):
    sock.close(linger=0)
    server.stop()
    server.join(30)
    backend.stop()


def test_sizes_parse_and_the_default_is_half_the_machine():
    assert parse_size("6G") == 6 << 30 and parse_size("512 MiB") == 512 << 20 and parse_size("1.5g") == 3 << 29
    assert parse_size("4096") == 4096
    for bad in ("", "six", "6X", "-1G"):
        with pytest.raises(ValueError, match="not a size"):
            parse_size(bad)
    assert default_max_memory() == max(256 << 20, machine_memory() // 2)


def test_budget_refusal_names_the_limit():
    budget = MemoryBudget(max_bytes=1 << 30, workers=4, baseline=512 << 20)
    assert budget.per_request(0) == 128 << 20
    assert budget.refusal(100 << 20, 0, "x") is None
    message = budget.refusal(200 << 20, 0, "this search")
    assert "--max-memory" in message and "1,024 MiB" in message and "128 MiB" in message


def test_a_request_over_its_share_gets_too_large_and_the_server_keeps_serving(index):
    folder, encoder = index
    backend, server, sock = serve(folder, encoder, max_memory=rss_bytes() + (300 << 20))  # ~nothing per request
    try:
        info = call(sock, "info")["result"]
        assert info["kernel"]["name"] and info["kernel"]["reason"]
        assert info["memory"]["max_bytes"] == backend.memory.max_bytes
        per_request = info["memory"]["per_request_bytes"]
        reply = call(sock, "search", {"query": "a person walks", "k": 500, "per_take": 50, "mode": "exact"})
        rows = len(encoder.encode_texts(["a person walks"])[0][0])  # the server estimates with the query's own rows
        need = backend.searcher.request_bytes(backend.searcher.snapshot.num_windows, 1, rows, "exact")
        if need > per_request:
            assert reply["ok"] is False and reply["error"]["code"] == "TOO_LARGE"
            assert "--max-memory" in reply["error"]["message"]
        assert call(sock, "ping")["ok"]
    finally:
        stop(backend, server, sock)
    backend, server, sock = serve(folder, encoder, max_memory=rss_bytes())  # nothing left at all
    try:
        reply = call(sock, "search", {"query": "a person walks"})
        assert reply["error"]["code"] == "TOO_LARGE" and "--max-memory" in reply["error"]["message"]
        clip = backend.searcher.snapshot.clips[0]["clip_id"]
        for method, params in (("similar", {"clip_id": clip}), ("get_motion", {"clip_id": clip})):
            reply = call(sock, method, params)
            assert reply["error"]["code"] == "TOO_LARGE", method
        assert call(sock, "info")["ok"]
    finally:
        stop(backend, server, sock)


def test_largest_allowed_requests_stay_inside_their_estimate(index):
    folder, encoder = index
    backend, server, sock = serve(folder, encoder, max_memory=rss_bytes() + (4 << 30))
    try:
        windows = backend.searcher.snapshot.num_windows
        for params in ({"query": "a person waves the left hand", "k": 500, "per_take": 50, "mode": "exact"},
                       {"query": "a person waves the left hand", "k": 500, "per_take": 50, "mode": "two_stage"}):
            call(sock, "search", params)  # first call: lazy set-up (tables, thread pools) is not the request's
            before = rss_bytes()
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")  # reset the peak (VmHWM) to now
            reply = call(sock, "search", params)
            assert reply["ok"], reply
            peak = _hwm()
            estimate = backend.searcher.request_bytes(windows, 1, 16, params["mode"], candidates=500 * 50 * 4)
            assert peak - before <= estimate, (peak - before, estimate)
    finally:
        stop(backend, server, sock)


def _hwm() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def test_cuda_is_refused_clearly_without_a_gpu():
    import torch

    from mofind.model.device import DeviceUnavailableError, resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(DeviceUnavailableError, match="use auto"):
        resolve_device("tpu")
