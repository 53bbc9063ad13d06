"""A real `mofind serve` for the add-on's end-to-end tests, run from the backend venv in subprocesses.

The bpy venv has no torch or scipy, so everything backend-side (writing the synthetic BVH library,
`mofind index`, `mofind serve`) runs with the backend's Python. Without shipped weights the backend
uses its seeded random test model (MOFIND_TEST_RANDOM_MODEL=1), the same in every process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import zmq

REPO = Path(__file__).resolve().parents[2]
BACKEND_PYTHON = Path(os.environ.get("MOFIND_BACKEND_PYTHON", REPO / ".venv" / "bin" / "python"))
START_TIMEOUT_S = 300


def backend_env() -> dict:
    return {**os.environ, "PYTHONPATH": f"{REPO / 'backend'}{os.pathsep}{REPO / 'tests'}",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MOFIND_TEST_RANDOM_MODEL": "1"}


def backend_python(*args: str, timeout: float = 600) -> str:
    done = subprocess.run([str(BACKEND_PYTHON), *args], env=backend_env(), capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"backend command {args[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def write_library(folder: Path, kinds=("bandai",), actions=None, seconds: float = 3.0) -> list[Path]:
    """Synthetic takes (tests/fixtures/synthetic.py) written as real BVH files."""
    code = ("import json, sys; from fixtures.synthetic import ACTIONS, write_action_library; "
            "a = json.loads(sys.argv[2]); "
            "paths = write_action_library(sys.argv[1], kinds=tuple(a['kinds']), "
            "actions=tuple(a['actions'] or ACTIONS), seconds=a['seconds']); "
            "print(json.dumps([str(p) for p in paths]))")
    spec = json.dumps({"kinds": list(kinds), "actions": list(actions or []), "seconds": seconds})
    return [Path(p) for p in json.loads(backend_python("-c", code, str(folder), spec))]


def build_index(library: Path, index: Path) -> dict:
    """`mofind index LIBRARY --index INDEX` (the CLI), returning its JSON report."""
    return json.loads(backend_python("-m", "mofind.cli", "index", str(library), "--index", str(index),
                                     "--quiet", "--json"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServedBackend:
    """`mofind serve --index INDEX --bind tcp://127.0.0.1:<free port> --library-root LOG_DIR`, authenticated as
    always: its keys go to a config folder under `log_dir`, and MOFIND_CONFIG points this process there while
    it runs, so the add-on finds the server's key and enrols itself exactly as on a user's machine.
    `stop()` sends SIGTERM and restores MOFIND_CONFIG."""

    def __init__(self, index: Path, log_dir: Path):
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.config = log_dir / "config"
        self.stdout = open(log_dir / "serve.out", "w")
        self.stderr_path = log_dir / "serve.err"
        self.stderr = open(self.stderr_path, "w")
        self._previous_config = os.environ.get("MOFIND_CONFIG")
        os.environ["MOFIND_CONFIG"] = str(self.config)
        self.process = subprocess.Popen(
            [str(BACKEND_PYTHON), "-m", "mofind.cli", "serve", "--index", str(index), "--bind", self.address,
             "--library-root", str(log_dir)],
            env=backend_env(), stdout=self.stdout, stderr=self.stderr)
        self._wait_until_answering()

    def _curve_options(self, deadline: float) -> dict:
        """A key of this test process, enrolled in the server's allowed-clients folder once the server made it."""
        import zmq.auth

        curve = self.config / "curve"
        while not (curve / "server.key").is_file():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mofind serve made no keys:\n" + self.stderr_path.read_text()[-3000:])
            time.sleep(0.1)
        own = self.config.parent / "test-client-key"
        own.mkdir(exist_ok=True)
        public_file, secret_file = zmq.auth.create_certificates(str(own), "tests")
        (curve / "clients" / "tests.key").write_bytes(Path(public_file).read_bytes())
        public, secret = zmq.auth.load_certificate(secret_file)
        server_public, _ = zmq.auth.load_certificate(str(curve / "server.key"))
        return {zmq.CURVE_PUBLICKEY: public, zmq.CURVE_SECRETKEY: secret, zmq.CURVE_SERVERKEY: server_public}

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        options = self._curve_options(deadline)
        context = zmq.Context()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        for option, value in options.items():
            sock.setsockopt(option, value)
        sock.connect(self.address)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mofind serve exited ({self.process.returncode}):\n"
                                       + self.stderr_path.read_text()[-3000:])
                sock.send_multipart([json.dumps({"v": 1, "id": "ready", "method": "ping"}).encode()])
                if sock.poll(1000):
                    sock.recv_multipart()
                    return
            raise RuntimeError(f"mofind serve did not answer within {START_TIMEOUT_S} s")
        finally:
            sock.close(linger=0)
            context.term()

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.stdout.close()
        self.stderr.close()
        if self._previous_config is None:
            os.environ.pop("MOFIND_CONFIG", None)
        else:
            os.environ["MOFIND_CONFIG"] = self._previous_config
