"""Finding and enrolling CurveZMQ keys for a `mofind serve` on this machine (no bpy; tested without Blender).

`mofind serve` authenticates every client, loopback included. When it runs as the same user on this
computer, its public key is at `<config>/curve/server.key` and its allowed-clients folder is
`<config>/curve/clients/`, so the add-on needs no copying by hand: `local_server_key()` reads the
server's key and `enrol()` writes this Blender's public key into that folder (the server reads it at the
next handshake). `<config>` is computed exactly as the backend's `mofind.paths.config_dir()` does
(MOFIND_CONFIG, else XDG_CONFIG_HOME/mofind or ~/.config/mofind, %APPDATA%\\mofind on Windows): the
add-on cannot import the backend, so both copies must change together.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

CURVE_FOLDER = "curve"
SERVER_PUBLIC_FILE = "server.key"
CLIENTS_FOLDER = "clients"
PUBLIC_CERTIFICATE = """#   ZeroMQ CURVE Public Certificate (a MoFind client allowed to connect)
metadata
curve
    public-key = "{key}"
"""


def config_dir() -> Path:
    if os.environ.get("MOFIND_CONFIG"):
        return Path(os.environ["MOFIND_CONFIG"])
    if os.name == "nt" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "mofind"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "mofind"


def local_server_key_file() -> Path:
    return config_dir() / CURVE_FOLDER / SERVER_PUBLIC_FILE


def local_server_key() -> str:
    """The public key of a `mofind serve` of this user on this machine, or "" when there is none (yet)."""
    import zmq.auth

    path = local_server_key_file()
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError):
        return ""
    return public.decode("ascii") if public else ""


def create_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A client key pair as zmq.auth certificates; the secret file is 0600 from the start (umask 077)."""
    import zmq.auth

    folder.mkdir(parents=True, exist_ok=True)
    previous = os.umask(0o077)
    try:
        public, secret = zmq.auth.create_certificates(str(folder), name)
    finally:
        os.umask(previous)
    os.chmod(secret, 0o600)
    return Path(public), Path(secret)


def client_key_pair(folder: Path, name: str = "blender") -> tuple[Path, Path]:
    """This Blender's key pair in `folder`, created on first use."""
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    if public.is_file() and secret.is_file():
        return public, secret
    return create_key_pair(folder, name)


def enrolment_name() -> str:
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())[:40]
    return f"blender-{host or 'local'}"


def enrol(public_key: str, name: str | None = None) -> Path | None:
    """Write `public_key` into the local server's allowed-clients folder; None when that folder is not ours
    to write (no local server, or another user's). An existing identical enrolment is left as it is."""
    clients = config_dir() / CURVE_FOLDER / CLIENTS_FOLDER
    if not clients.is_dir() or not os.access(clients, os.W_OK):
        return None
    path = clients / f"{name or enrolment_name()}.key"
    text = PUBLIC_CERTIFICATE.format(key=public_key)
    try:
        if not (path.is_file() and public_key in path.read_text(encoding="ascii", errors="replace")):
            path.write_text(text, encoding="ascii")
    except OSError:
        return None
    return path


def is_enrolled(public_key: str) -> bool:
    """Is `public_key` among the local server's allowed clients?"""
    import zmq.auth

    clients = config_dir() / CURVE_FOLDER / CLIENTS_FOLDER
    for path in clients.glob("*.key") if clients.is_dir() else ():
        try:
            if zmq.auth.load_certificate(str(path))[0] == public_key.encode("ascii"):
                return True
        except (OSError, ValueError):
            continue
    return False
