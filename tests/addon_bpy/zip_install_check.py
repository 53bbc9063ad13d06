"""Run in a fresh bpy process: install the built zip as a user, then use the add-on with the bundled pyzmq.

    python zip_install_check.py ZIP   (with BLENDER_USER_RESOURCES pointing at an empty folder)

The bpy venv has its own pyzmq; a meta-path finder makes `import zmq` resolve only inside the
extensions' site-packages (where Blender unpacks the zip's wheels), so whatever works below works
with the bundled wheel. Prints one JSON line with what it saw.
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
from pathlib import Path


class BundledZmqOnly:
    """Find the top-level `zmq` package only in `site` (its submodules follow the package's path)."""

    def __init__(self, site: str):
        self.site = site

    def find_spec(self, name, path=None, target=None):
        if name != "zmq":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, [self.site])
        if spec is None:
            raise ImportError(f"no bundled zmq in {self.site}")
        return spec


def main(zip_path: str) -> None:
    import bpy

    site = bpy.utils.user_resource("EXTENSIONS", path=f".local/lib/python{sys.version_info.major}."
                                                       f"{sys.version_info.minor}/site-packages")
    sys.meta_path.insert(0, BundledZmqOnly(site))
    assert "zmq" not in sys.modules
    result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    module = "bl_ext.user_default.mofind"
    enabled = module in bpy.context.preferences.addons.keys()
    import zmq

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from addon_pure.zmq_server import ScriptedRouter, ok

    with ScriptedRouter(lambda header, frames, server: [ok(header, {"pong": True, "version": "zip-test"})]) as router:
        prefs = bpy.context.preferences.addons[module].preferences
        prefs.address = router.address
        pinged = bpy.ops.mofind.ping(wait=True)
        status = bpy.context.window_manager.mofind.status
    installed = sorted(p.name for p in Path(site).iterdir())
    bpy.ops.preferences.addon_disable(module=module)
    print(json.dumps({
        "install": sorted(result), "enabled": enabled,
        "zmq_file": zmq.__file__, "zmq_version": zmq.__version__, "site": site, "site_entries": installed,
        "ping": sorted(pinged), "status": status, "requests": len(router.requests),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
