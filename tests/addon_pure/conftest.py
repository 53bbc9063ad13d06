"""Import the add-on's bpy-free modules (client, wire) without Blender.

The add-on's `__init__.py` registers Blender classes, so it must not run here: a bare
package object named `mofind_addon` points at blender_addon/ and its submodules import
normally (relative imports included).
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

ADDON_DIR = Path(__file__).resolve().parents[2] / "blender_addon"


@pytest.fixture(scope="session")
def addon_pkg() -> types.ModuleType:
    if "mofind_addon" not in sys.modules:
        package = types.ModuleType("mofind_addon")
        package.__path__ = [str(ADDON_DIR)]
        sys.modules["mofind_addon"] = package
    return sys.modules["mofind_addon"]


@pytest.fixture(scope="session")
def client_mod(addon_pkg):
    return importlib.import_module("mofind_addon.client")


@pytest.fixture(scope="session")
def wire_mod(addon_pkg):
    return importlib.import_module("mofind_addon.wire")
