"""MoFind as a normal package: a built wheel installed into a fresh venv outside the checkout must work.

The fresh venv borrows the heavy dependencies (torch, transformers, ...) from the project's venv through a
`.pth` path line (so the test needs no download), but MoFind itself comes only from the wheel: the checkout is
neither on the path nor the working directory, and the test checks where `mofind` was imported from.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from fixtures.synthetic import write_action_library

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, text=True, timeout=600)
    (path,) = out.glob("mofind-*.whl")
    return path


def test_wheel_carries_the_shipped_model(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for required in ("weights.safetensors", "config.json", "Mean_angle.npy", "Std_angle.npy"):
        assert f"mofind/model_weights/{required}" in names
    assert not [name for name in names if name.startswith(("tests/", "bench/", "blender_addon/"))]


def test_installed_wheel_indexes_and_queries_outside_the_checkout(wheel, tmp_path):
    env_dir = tmp_path / "fresh-venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "MOFIND_MODEL", "MOFIND_CACHE", "MOFIND_TEST_RANDOM_MODEL")}
    # Install first, borrow the dependencies after: pip must not see the project venv's own mofind.
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300, env=env)
    Path(purelib, "borrowed-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env.update(HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    probe = subprocess.run([str(python), "-c", "import mofind.paths as p; print(p.__file__); print(p.model_dir())"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert probe.returncode == 0, probe.stderr
    where = probe.stdout.split()
    assert where[0].startswith(str(env_dir)) and where[1].startswith(str(env_dir)), where

    library = tmp_path / "mocap"
    write_action_library(library, kinds=("bandai",), actions=("walk", "wave_left"), seconds=4.0)
    mofind = env_dir / "bin" / "mofind"
    run = dict(check=True, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    report = json.loads(subprocess.run([str(mofind), "index", str(library), "--index", str(tmp_path / "index"),
                                        "--workers", "0", "--json"], **run).stdout)
    assert report["indexed"] == 2
    payload = json.loads(subprocess.run([str(mofind), "query", "a person walks forward", "--index",
                                         str(tmp_path / "index"), "-k", "2", "--json"], **run).stdout)
    assert len(payload["results"]) == 2 and all(Path(r["source"]).parent == library for r in payload["results"])
    assert not list(Path(purelib).glob(".cache")) and not list(Path(purelib).parent.glob(".cache"))
