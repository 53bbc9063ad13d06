"""CurveZMQ keys for `mofind serve`, which lets in only enrolled clients (the "ironhouse" pattern).

A server on this machine needs nothing from the user: `local_settings` finds its public key and enrols
this Blender's own key (see `keyring`). A remote server needs its public key pasted into the
preferences and this Blender's public key enrolled there (`mofind keys allow FILE` on the server).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import bpy

from .. import keyring
from ..prefs import ADDON_PACKAGE, ClientSettings


def keys_folder() -> Path:
    return Path(bpy.utils.extension_path_user(ADDON_PACKAGE, path="keys", create=True))


def create_client_key(name: str = "blender") -> tuple[Path, Path]:
    """This Blender's key pair under the extension's user folder (made once); returns (public, secret) files.

    The public file goes into the server's allowed-clients folder; the secret file stays here (0600).
    """
    return keyring.client_key_pair(keys_folder(), name)


def local_settings(settings: ClientSettings) -> ClientSettings:
    """`settings` with the local server's key and an enrolled client key filled in, when the address is this
    machine, no server key is set, and a `mofind serve` of this user has made its keys; else unchanged."""
    if settings.server_key:
        return settings
    server_key = keyring.local_server_key()
    if not server_key:
        return settings
    import zmq.auth

    secret_file = Path(settings.client_key_file) if settings.client_key_file else create_client_key()[1]
    public, _ = zmq.auth.load_certificate(str(secret_file))
    keyring.enrol(public.decode("ascii"))
    return replace(settings, server_key=server_key, client_key_file=str(secret_file))
