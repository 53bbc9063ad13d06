"""Run in a fresh bpy process: the add-on in a Blender whose Python has no numpy (as Debian's Blender).

    python numpy_absent_check.py ADDON_DIR   (with BLENDER_USER_RESOURCES pointing at an empty folder)

bpy's own modules may have imported numpy already; they are dropped from sys.modules and a
meta-path finder refuses any new `import numpy`, so the add-on sees what a distro Blender shows.
Prints one JSON line with what it saw.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path


class NoNumpy:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" or name.startswith("numpy."):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return None


def main(addon_dir: str) -> None:
    import bpy

    for name in [name for name in sys.modules if name == "numpy" or name.startswith("numpy.")]:
        del sys.modules[name]
    sys.meta_path.insert(0, NoNumpy())

    repo = Path(tempfile.mkdtemp(prefix="mofind-nonumpy-"))
    (repo / "mofind").symlink_to(addon_dir, target_is_directory=True)
    bpy.context.preferences.extensions.repos.new(name="nonumpy", module="nonumpy", custom_directory=str(repo),
                                                 source="USER")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        enabled = bpy.ops.preferences.addon_enable(module="bl_ext.nonumpy.mofind")
    addon = sys.modules["bl_ext.nonumpy.mofind"]
    session = bpy.context.window_manager.mofind
    item = session.results.add()
    item.clip_id, item.name, item.start_frame, item.end_frame = "0" * 16, "walk", 0, 30
    data = bpy.data.armatures.new("Rig")
    rig = bpy.data.objects.new("Rig", data)
    bpy.context.scene.collection.objects.link(rig)
    bpy.context.view_layer.objects.active = rig
    service = sys.modules["bl_ext.nonumpy.mofind.service"].get()
    pending_before = service.client.pending_count
    applied = bpy.ops.mofind.apply_clip(index=0, wait=True)
    print(json.dumps({
        "enabled": sorted(enabled), "printed": printed.getvalue(),
        "numpy_available": addon.dependencies.numpy_available(),
        "apply": sorted(applied), "status": session.status, "sent": service.client.pending_count - pending_before,
        "numpy_imported": "numpy" in sys.modules,
    }))


if __name__ == "__main__":
    main(sys.argv[1])
