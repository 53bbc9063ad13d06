"""CurveZMQ keys of `mofind serve`: its own key pair and the folder of clients allowed in (ironhouse).

Layout under `mofind.paths.config_dir()` (created on first start, owner-only like ~/.ssh):

    curve/                   0700
      server.key             the server's public certificate: what a client needs to connect
      server.key_secret      0600, never leaves this machine
      clients/               0700: one public certificate (`NAME.key`) per client allowed in

The allowed-clients folder is read at every handshake (`AllowedClients`), so a client enrolled while the
server runs (the Blender add-on on the same machine writes its own public key there) connects at once,
and deleting a file revokes that client for its next connection. Certificates are zmq.auth's text format
(`zmq.auth.create_certificates`), written through `zmq.auth` rather than by hand.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CURVE_FOLDER = "curve"
SERVER_NAME = "server"
CLIENTS_FOLDER = "clients"
Z85_KEY_CHARS = 40
_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")
# zmq.auth's public certificate format (what `zmq.auth.load_certificate` reads); pyzmq has no public writer
PUBLIC_CERTIFICATE = """#   ZeroMQ CURVE Public Certificate (a MoFind client allowed to connect)
metadata
curve
    public-key = "{key}"
"""


class KeySetupError(ValueError):
    """Keys that are missing, malformed, or readable by other users."""


@dataclass(frozen=True)
class KeyStore:
    """The server's key folder (`root`), by default `config_dir()/curve`."""

    root: Path

    @classmethod
    def default(cls) -> "KeyStore":
        from mofind.paths import config_dir

        return cls(config_dir() / CURVE_FOLDER)

    @property
    def server_public_file(self) -> Path:
        return self.root / f"{SERVER_NAME}.key"

    @property
    def server_secret_file(self) -> Path:
        return self.root / f"{SERVER_NAME}.key_secret"

    @property
    def clients_dir(self) -> Path:
        return self.root / CLIENTS_FOLDER

    def ensure(self) -> bool:
        """Create the folders and the server's key pair if missing (True when a pair was made); check modes."""
        private_dir(self.root)
        private_dir(self.clients_dir)
        created = False
        if not self.server_secret_file.exists():
            create_certificates(self.root, SERVER_NAME)
            created = True
        check_private(self.server_secret_file)
        return created

    def server_public_key(self) -> str:
        return load_public_key(self.server_public_file)

    def allow(self, public_key: str, name: str) -> Path:
        """Enrol a client: write its public certificate into the allowed-clients folder."""
        key = public_key.strip()
        if len(key) != Z85_KEY_CHARS or not key.isascii() or '"' in key:
            raise KeySetupError(f"a CurveZMQ public key is {Z85_KEY_CHARS} Z85 characters, got {key[:60]!r}")
        private_dir(self.clients_dir)
        path = self.clients_dir / f"{safe_name(name)}.key"
        path.write_text(PUBLIC_CERTIFICATE.format(key=key), encoding="ascii")
        return path

    def allowed_keys(self) -> set[bytes]:
        return AllowedClients(self.clients_dir).keys()


class AllowedClients:
    """ZAP credentials provider (pyzmq's `configure_curve_callback`): is this key's certificate in the folder?"""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def keys(self) -> set[bytes]:
        import zmq.auth

        found = set()
        try:
            candidates = sorted(self.folder.glob("*.key"))
        except OSError:
            return found
        for path in candidates:
            try:
                public, _ = zmq.auth.load_certificate(str(path))
            except (OSError, ValueError) as exc:  # one broken file must not lock everyone out
                log.warning("ignoring client key %s: %s", path, exc)
                continue
            if public:
                found.add(bytes(public))
        return found

    def callback(self, domain: str, key: bytes) -> bool:
        allowed = key in self.keys()
        if not allowed:
            log.warning("refused a CurveZMQ client with an unknown key %s", key.decode("ascii", "replace"))
        return allowed


def _read_certificate(path: Path) -> tuple[bytes, bytes | None]:
    """(public, secret or None) of a ZeroMQ certificate file; a `KeySetupError` naming the file when unreadable."""
    import zmq.auth

    try:
        return zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeySetupError(f"cannot read the key file {path}: {exc}") from None


def load_public_key(path: Path) -> str:
    public, _ = _read_certificate(path)
    if not public:
        raise KeySetupError(f"{path} holds no public key")
    return public.decode("ascii")


def load_secret_certificate(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) from a secret certificate that only its owner can read."""
    check_private(Path(path))
    public, secret = _read_certificate(path)
    if not secret:
        raise KeySetupError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


@contextmanager
def _owner_only_umask():
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def private_dir(path: Path) -> Path:
    """mkdir -p with mode 0700 (and tighten an existing folder we own)."""
    path = Path(path)
    with _owner_only_umask():
        path.mkdir(parents=True, exist_ok=True)
    if os.name == "posix" and path.stat().st_uid == os.geteuid():
        path.chmod(0o700)
    return path


def create_certificates(folder: Path, name: str) -> tuple[Path, Path]:
    """A new key pair as zmq.auth certificates: public 0644, secret 0600 (never world-readable, even briefly)."""
    import zmq.auth

    private_dir(folder)
    with _owner_only_umask():
        public, secret = zmq.auth.create_certificates(str(folder), safe_name(name))
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)
    return Path(public), Path(secret)


def check_private(path: Path) -> None:
    """Refuse a secret key file that other users could read or that another user owns (as ssh does)."""
    try:
        info = Path(path).stat()
    except FileNotFoundError:
        raise KeySetupError(f"{path}: no such key file") from None
    if os.name != "posix":
        return
    if info.st_uid != os.geteuid():
        raise KeySetupError(f"{path} belongs to another user (uid {info.st_uid}); use your own key")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise KeySetupError(f"{path} can be read by other users (mode {stat.S_IMODE(info.st_mode):o}): "
                            f"run `chmod 600 {path}` (or delete it to get a new key)")


def safe_name(name: str) -> str:
    cleaned = _NAME_RE.sub("-", name).strip(".-")
    return cleaned[:64] or "client"
