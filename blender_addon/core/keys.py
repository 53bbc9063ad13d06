"""CurveZMQ client keys for a backend that only lets authorised clients in (the "ironhouse" pattern)."""

from __future__ import annotations

from pathlib import Path

import bpy

from ..prefs import ADDON_PACKAGE


def create_client_key(name: str = "blender") -> tuple[Path, Path]:
    """Write a new key pair under the extension's user folder; returns (public file, secret file).

    The public file goes into the server's `--curve-clients` folder; the secret file stays here.
    """
    import zmq.auth

    folder = Path(bpy.utils.extension_path_user(ADDON_PACKAGE, path="keys", create=True))
    public, secret = zmq.auth.create_certificates(str(folder), name)
    return Path(public), Path(secret)
