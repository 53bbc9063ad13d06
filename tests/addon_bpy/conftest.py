"""Run the add-on inside the bpy wheel, enabled exactly as Blender enables an extension.

Blender's user folders go to a throw-away directory (BLENDER_USER_RESOURCES, read when bpy is
imported), and so does MoFind's own config folder (MOFIND_CONFIG: keys, settings), so tests never touch the
developer's own Blender configuration, and never see the keys a `mofind serve` run on this machine left (the
add-on would then ask the tests' loopback servers for CurveZMQ). blender_addon/ is
linked into a local extension repository and enabled with `preferences.addon_enable`, so
`__package__` is a real `bl_ext.<repo>.mofind` name, as in a user's Blender.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ADDON_DIR = REPO / "blender_addon"
REPO_MODULE = "mofind_dev"
ADDON_MODULE = f"bl_ext.{REPO_MODULE}.mofind"

if importlib.util.find_spec("bpy") is None:
    collect_ignore_glob = ["test_*.py"]  # run these with a bpy venv: .venv-bpy42/bin/python -m pytest tests/addon_bpy
else:
    _USER_RESOURCES = tempfile.mkdtemp(prefix="mofind-blender-user-")
    os.environ["BLENDER_USER_RESOURCES"] = _USER_RESOURCES
    os.environ["MOFIND_CONFIG"] = os.path.join(_USER_RESOURCES, "mofind-config")


def pytest_sessionfinish(session, exitstatus):
    if "_USER_RESOURCES" in globals():
        shutil.rmtree(_USER_RESOURCES, ignore_errors=True)
    _SESSION["exit_status"] = int(exitstatus)


_SESSION: dict[str, int] = {}


def pytest_unconfigure(config):
    """The bpy 4.2 wheel segfaults while Python shuts down once Rigify has been enabled (after every test has
    run and been reported): leave with pytest's own exit status instead of the crash's 139."""
    if "rigify" in sys.modules and "exit_status" in _SESSION:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["exit_status"])


@pytest.fixture(scope="session")
def bpy():
    import bpy as module

    return module


@pytest.fixture(scope="session")
def dev_repo(bpy, tmp_path_factory) -> Path:
    """A user extension repository whose `mofind` entry is a link to the working tree's blender_addon/."""
    directory = tmp_path_factory.mktemp("extensions")
    (directory / "mofind").symlink_to(ADDON_DIR, target_is_directory=True)
    repos = bpy.context.preferences.extensions.repos
    repos.new(name=REPO_MODULE, module=REPO_MODULE, custom_directory=str(directory), source="USER")
    return directory


@pytest.fixture(autouse=True)
def factory_scene(bpy):
    """Every test starts from an empty scene (preferences and enabled add-ons stay)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    yield


@pytest.fixture
def addon(bpy, dev_repo):
    """The add-on enabled through Blender; disabled again afterwards (and checked to be off)."""
    result = bpy.ops.preferences.addon_enable(module=ADDON_MODULE)
    assert result == {"FINISHED"}
    module = sys.modules[ADDON_MODULE]
    yield module
    if ADDON_MODULE in bpy.context.preferences.addons:
        bpy.ops.preferences.addon_disable(module=ADDON_MODULE)


@pytest.fixture
def service(addon):
    return sys.modules[f"{ADDON_MODULE}.service"].get()


@pytest.fixture
def prefs(bpy, addon):
    return bpy.context.preferences.addons[ADDON_MODULE].preferences


def make_armature(bpy, name: str, bones: list[tuple[str, str | None, tuple, tuple]]):
    """An armature object from (name, parent, head, tail) tuples, in rest pose, active and selected."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    obj.select_set(True)
    bpy.ops.object.mode_set(mode="EDIT")
    for bone_name, parent, head, tail in bones:
        bone = data.edit_bones.new(bone_name)
        bone.head, bone.tail = head, tail
        if parent:
            bone.parent = data.edit_bones[parent]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj
