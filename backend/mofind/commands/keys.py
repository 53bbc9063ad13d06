"""`mofind keys`: the CurveZMQ keys of `mofind serve` (show the server's public key, enrol clients).

    mofind keys                              where the keys are, the server's public key, allowed clients
    mofind keys allow KEY_OR_FILE --name N   let a client in (its 40-character public key, or its .key file)
    mofind keys new-client DIR --name N      make a client key pair (secret file 0600) for a script or host

Revoke a client by deleting its file from the allowed-clients folder; the server reads the folder at
every handshake, so neither enrolling nor revoking needs a restart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "Show the server's CurveZMQ key and enrol or create client keys."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="show", choices=("show", "allow", "new-client"))
    parser.add_argument("value", nargs="?", default=None,
                        help="allow: the client's public key (40 characters) or its public .key file; "
                             "new-client: the folder to write the pair to")
    parser.add_argument("--name", default=None, help="a name for the client (its file name)")


def run(args: argparse.Namespace) -> int:
    from mofind.server.keys import KeySetupError, KeyStore, create_certificates, load_public_key

    store = KeyStore.default()
    try:
        if args.action == "show":
            created = store.ensure()
            clients = sorted(p.stem for p in store.clients_dir.glob("*.key"))
            print(f"{'created ' if created else ''}server keys: {store.root}\n"
                  f"server public key: {store.server_public_key()}\n"
                  f"  (file: {store.server_public_file}; give it to remote clients: Blender > Preferences > "
                  "MoFind > Server key)\n"
                  f"allowed clients ({store.clients_dir}): {', '.join(clients) or 'none yet'}")
            return 0
        if args.value is None:
            print(f"mofind keys {args.action}: give a value (see --help)", file=sys.stderr)
            return 2
        if args.action == "allow":
            value = Path(args.value)
            key = load_public_key(value) if value.is_file() else args.value
            name = args.name or (value.stem if value.is_file() else f"client-{key[:8]}")
            store.ensure()
            print(f"allowed: {store.allow(key, name)}")
            return 0
        public, secret = create_certificates(Path(args.value), args.name or "client")
        print(f"public key file: {public}  (enrol it: mofind keys allow {public})\n"
              f"secret key file: {secret}  (owner-only; keep it on the client)")
        return 0
    except (KeySetupError, OSError) as exc:
        print(f"mofind keys: {exc}", file=sys.stderr)
        return 2
