"""The built extension zip: valid for Blender's tool, installs like a user install, imports its own pyzmq."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECK = Path(__file__).with_name("zip_install_check.py")
PLATFORM_WHEELS = ("win_amd64", "win_arm64", "macosx_10_15_universal2", "manylinux_2_28_x86_64")
BLENDER_PLATFORMS = ["windows-x64", "windows-arm64", "macos-arm64", "macos-x64", "linux-x64"]

pytestmark = pytest.mark.bpy


@pytest.fixture(scope="module")
def built_zip() -> Path:
    """`python build_addon.py` from the working tree (wheels come from .cache/wheels after the first run)."""
    done = subprocess.run([sys.executable, str(REPO / "build_addon.py")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    if done.returncode != 0 and "pip could not download" in done.stderr:
        pytest.skip(f"no network for the first wheel download: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr
    import tomllib

    version = tomllib.loads((REPO / "blender_addon" / "blender_manifest.toml").read_text())["version"]
    path = REPO / "dist" / f"mofind-{version}.zip"
    assert path.is_file() and str(path.relative_to(REPO)) in done.stdout
    return path


def test_zip_bundles_pyzmq_for_every_platform_and_both_pythons(built_zip):
    with zipfile.ZipFile(built_zip) as archive:
        names = archive.namelist()
        manifest = archive.read("blender_manifest.toml").decode()
    wheels = [name for name in names if name.startswith("wheels/")]
    for python in ("cp311", "cp313"):
        for platform in PLATFORM_WHEELS:
            assert any(python in wheel and platform in wheel for wheel in wheels), (python, platform)
    assert all(f'"./{wheel}"' in manifest for wheel in wheels)
    assert not any("aarch64" in wheel for wheel in wheels)  # no Blender build for Linux on ARM
    import tomllib

    parsed = tomllib.loads(manifest)
    assert parsed["platforms"] == BLENDER_PLATFORMS
    assert "website" not in parsed  # no placeholder link; Blender's tool validated the rest
    assert "__init__.py" in names and "client.py" in names and "retarget/apply.py" in names
    assert not any("__pycache__" in name for name in names)


def test_zip_installs_and_works_with_its_bundled_pyzmq(built_zip, tmp_path):
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user")}
    done = subprocess.run([sys.executable, str(CHECK), str(built_zip)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["install"] == ["FINISHED"] and seen["enabled"]
    assert seen["zmq_file"].startswith(seen["site"]) and seen["zmq_version"] == "26.4.0"
    assert "zmq" in seen["site_entries"] and any(e.startswith("pyzmq-26.4.0") for e in seen["site_entries"])
    assert seen["ping"] == ["FINISHED"] and "zip-test" in seen["status"] and seen["requests"] >= 2


def test_zip_carries_the_backends_bone_alias_table_byte_for_byte(built_zip):
    """One alias table: the zip's copy is the backend's file, so the two detectors cannot drift."""
    source = (REPO / "backend" / "mofind" / "skeleton" / "bone_aliases.json").read_bytes()
    with zipfile.ZipFile(built_zip) as archive:
        info = archive.getinfo("retarget/bone_aliases.json")
        assert archive.read(info) == source
        assert not (info.external_attr >> 16) & 0o120000 == 0o120000  # a real file, not a symbolic link
