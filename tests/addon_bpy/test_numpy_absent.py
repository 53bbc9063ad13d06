"""Blender without numpy (a Linux distribution's package): the add-on enables, says what is missing and
how to fix it on this system, refuses Apply with that message before sending anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from addon_bpy.conftest import ADDON_DIR

CHECK = Path(__file__).with_name("numpy_absent_check.py")

pytestmark = pytest.mark.bpy


def test_addon_without_numpy_explains_and_refuses_apply(tmp_path):
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "blender-user")}
    done = subprocess.run([sys.executable, str(CHECK), str(ADDON_DIR)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["enabled"] == ["FINISHED"] and seen["numpy_available"] is False
    assert "has no numpy" in seen["printed"] and "blender.org" in seen["printed"]  # said when enabled
    assert seen["apply"] == ["CANCELLED"] and "has no numpy" in seen["status"]
    assert seen["sent"] == 0 and not seen["numpy_imported"]
