"""The operator's mofind.toml: library roots and motion-file caps, read by `mofind serve` and `mofind index`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.synthetic import write_action_bvh
from mofind.io.limits import MotionLimits
from mofind.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_roots_and_limits_come_from_the_file_and_a_missing_file_means_defaults(tmp_path):
    assert load_settings(tmp_path / "absent.toml").limits == MotionLimits()
    path = tmp_path / "mofind.toml"
    path.write_text('[serve]\nlibrary_roots = ["/mocap", "~/takes"]\n\n[limits]\nmax_joints = 64\n'
                    'max_duration_s = 7200.0\n')
    settings = load_settings(path)
    assert settings.library_roots == (Path("/mocap"), Path("~/takes").expanduser())
    assert settings.limits == MotionLimits(max_joints=64, max_duration_s=7200.0)


@pytest.mark.parametrize("text, message", [
    ("[serve\n", "mofind.toml"),
    ('[serve]\nlibrary_roots = "/mocap"\n', "library_roots must be a list"),
    ("[limits]\nmax_jionts = 3\n", "unknown limit 'max_jionts'"),
    ("[limits]\nmax_frames = -1\n", "max_frames must be a positive number"),
    ('[limits]\nmax_fps = "fast"\n', "max_fps must be a positive number"),
])
def test_a_malformed_file_is_a_clear_error_naming_it(tmp_path, text, message):
    path = tmp_path / "mofind.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_settings(path)


@pytest.mark.slow
def test_mofind_index_parses_under_the_configured_caps(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    write_action_bvh(library / "two_seconds.bvh", "bandai", "walk", seconds=2.0)
    settings = tmp_path / "mofind.toml"
    settings.write_text("[limits]\nmax_duration_s = 1.0\n")
    env = {**os.environ, "MOFIND_TEST_RANDOM_MODEL": "1", "MOFIND_SETTINGS": str(settings),
           "PYTHONPATH": str(REPO / "backend")}
    done = subprocess.run([sys.executable, "-m", "mofind.cli", "index", str(library), "--index", str(tmp_path / "i"),
                           "--workers", "0", "--json"], env=env, capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["indexed"] == 0
    assert "max_duration_s" in report["failed"][0]["error"]
