"""`mofind serve`: the ZeroMQ backend the Blender add-on talks to (protocol v1, docs/protocol.md).

Binds loopback by default and authenticates every client, on loopback too: on first start it makes its
CurveZMQ key pair in the user's config folder (`mofind.server.keys`) and lets in only clients whose
public key is in the allowed-clients folder there (the Blender add-on on this machine enrols itself;
`mofind keys allow` enrols another). `--insecure` turns authentication off. Clients may index only
inside `--library-root` folders (or `library_roots` in mofind.toml). SIGINT / SIGTERM stop it cleanly:
the running indexing job commits what it finished, sockets close, the index is never left half-written.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from . import add_text_precision

HELP = "Run the ZeroMQ backend that the Blender add-on talks to."
DEFAULT_BIND = "tcp://127.0.0.1:5555"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", type=Path, default=None,
                        help="index folder (default: mofind.paths.default_index_dir(); created empty if missing)")
    parser.add_argument("--bind", default=DEFAULT_BIND, help=f"ZeroMQ address to listen on (default {DEFAULT_BIND})")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped weights)")
    parser.add_argument("--workers", type=int, default=4, help="request worker threads")
    parser.add_argument("--index-workers", type=int, default=1, help="parsing processes for indexing jobs")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and numpy (BLAS) threads per operation (default 1: queries are small, requests "
                             "run in parallel worker threads, and multi-threaded torch stalls badly when Blender keeps "
                             "a core busy)")
    parser.add_argument("--search-threads", type=int, default=None, metavar="N",
                        help="threads one search spreads the index's chunks over (default: every core, at most 4). "
                             "Results are identical for any N; use 1 on a machine whose cores other jobs keep busy "
                             "(there more threads were no faster, see docs/architecture.md)")
    parser.add_argument("--library-root", type=Path, action="append", default=[], metavar="DIR",
                        help="a folder clients may index and remove from (repeatable; adds to library_roots in "
                             "mofind.toml). Without any, clients cannot index by path")
    parser.add_argument("--curve-secret", type=Path, default=None, metavar="FILE",
                        help="server certificate with its CurveZMQ secret key (default: made on first start in "
                             "the config folder, see `mofind keys`)")
    parser.add_argument("--curve-clients", type=Path, default=None, metavar="DIR",
                        help="folder of authorised client public-key certificates (default: the config folder's)")
    parser.add_argument("--insecure", action="store_true",
                        help="no authentication or encryption: any local user (and, off loopback, any host) can "
                             "use the server. Trusted single-user machines or networks only")
    parser.add_argument("--settings", type=Path, default=None, metavar="FILE",
                        help="settings file (default: mofind.toml in the config folder, $MOFIND_SETTINGS)")
    parser.add_argument("--cluster", metavar="ADDRESS", default=None,
                        help="serve the index sharded over this Ray cluster (HOST:PORT or 'auto'; needs the 'cluster' "
                             "extra); every node must see the index folder at the same path")
    parser.add_argument("--shards", type=int, default=None,
                        help="with --cluster: shard actors (default: one per node of the cluster)")
    parser.add_argument("--shard-timeout", type=float, default=60.0, metavar="S",
                        help="with --cluster: seconds a shard may take before a reply says it was not searched")
    parser.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="memory the server may use in all, e.g. 6G (default: half this machine's memory); "
                             "requests that would not fit in their share get TOO_LARGE")
    parser.add_argument("--device", default="cpu",
                        help="where the text encoder and the MaxSim kernel run: auto, cpu (default), cuda or cuda:N")
    add_text_precision(parser)
    parser.add_argument("--verbose", action="store_true", help="log every failed request with its traceback")


def run(args: argparse.Namespace) -> int:
    from mofind.index.cluster import ClusterUnavailableError
    from mofind.index.encoders import ModelUnavailableError, load_encoder
    from mofind.index.manifest import IndexStoreError
    from mofind.paths import default_index_dir
    from mofind.server.handlers import Backend
    from mofind.server.keys import KeySetupError
    from mofind.server.router import BindRefusedError, Server, check_bind
    from mofind.settings import SettingsError, load_settings

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(args.settings)
        security, key_lines = _security(args)
        for warning in check_bind(args.bind, security):
            print(warning, file=sys.stderr)
    except (BindRefusedError, KeySetupError, SettingsError, OSError) as exc:
        print(f"mofind serve: {exc}", file=sys.stderr)
        return 2
    roots = [*settings.library_roots, *args.library_root]
    index_dir = args.index or default_index_dir()
    from mofind.model.device import DeviceUnavailableError, resolve_device
    from mofind.server.memory import default_max_memory, parse_size

    try:
        max_memory = parse_size(args.max_memory) if args.max_memory is not None else default_max_memory()
        device = resolve_device(args.device)
    except ValueError as exc:  # DeviceUnavailableError too
        print(f"mofind serve: {exc}", file=sys.stderr)
        return 2
    import torch

    from mofind.index.linalg import limit_blas_threads

    torch.set_num_threads(max(1, args.threads))
    if args.search_threads is not None:
        from mofind.index.search import set_default_search_threads

        set_default_search_threads(args.search_threads)
    limit_blas_threads(args.threads)  # numpy's BLAS too: its idle threads would spin against torch's
    try:
        encoder = load_encoder(args.model, device=device, text_precision=args.text_precision)
        backend = Backend(index_dir, encoder, job_workers=args.index_workers, model_dir=args.model,
                          library_roots=roots, motion_limits=settings.limits, settings_file=settings.path,
                          searcher_factory=_cluster_searcher(args) if args.cluster else None,
                          max_memory=max_memory, workers=args.workers, device=device)
        server = Server(backend, args.bind, workers=args.workers, security=security)
    except (IndexStoreError, ModelUnavailableError, BindRefusedError, ClusterUnavailableError,
            ValueError) as exc:  # ValueError: model files
        print(f"mofind serve: {exc}", file=sys.stderr)
        return 2

    def request_stop(signum, _frame) -> None:
        print(f"\nmofind serve: {signal.Signals(signum).name} received, stopping", file=sys.stderr, flush=True)
        backend.begin_shutdown()
        server.stop()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    threading.Thread(target=backend.warm, name="mofind-warm", daemon=True).start()
    reader = backend.searcher.reader
    if args.cluster:
        print(f"  search sharded over {backend.searcher.count} Ray actors on the cluster at {args.cluster}",
              flush=True)
    print(f"MoFind backend listening on {args.bind}\n"
          f"  model: {reader.spec.model_name} ({reader.spec.model_hash})\n"
          f"  index: {index_dir} ({len(reader)} clips, {reader.num_windows} windows)\n"
          + "".join(f"  {line}\n" for line in key_lines) +
          f"  clients may index: {backend.roots.describe()}"
          + ("" if roots else f" (allow a folder with --library-root DIR or library_roots in {settings.path})")
          + "\n"
          f"  search kernel: {backend.searcher.kernel.name} on {device}; memory: --max-memory "
          f"{max_memory / (1 << 30):.1f} GiB, {backend.memory.per_request(backend._resident()) / (1 << 20):,.0f} MiB "
          f"per request\n"
          f"Index a folder:   {_mofind_command()} index /path/to/mocap --index {index_dir}\n"
          f"                  (or in Blender: sidebar MoFind > Bulk Index > Index Folder, while this server runs)\n"
          f"Connect Blender:  Edit > Preferences > Add-ons > MoFind > Backend address = {args.bind}\n"
          f"Stop with Ctrl-C.", flush=True)
    try:
        server.run()
    except Exception as exc:  # noqa: BLE001 - e.g. the port is taken: say so, no traceback
        print(f"mofind serve: cannot serve on {args.bind}: {exc}", file=sys.stderr)
        backend.stop()
        return 2
    backend.stop()
    print("mofind serve: stopped", file=sys.stderr)
    return 0


def _security(args):
    """The Security to serve with, and lines for the start-up banner saying how clients get in."""
    from mofind.server.keys import AllowedClients, KeyStore
    from mofind.server.router import Security

    if args.insecure:
        return Security(insecure=True), ["authentication: OFF (--insecure)"]
    if args.curve_secret is not None:
        return Security(args.curve_secret, args.curve_clients), [
            f"authentication: CurveZMQ, clients allowed from {args.curve_clients}"]
    store = KeyStore.default()
    created = store.ensure()
    clients = args.curve_clients or store.clients_dir
    return Security(store.server_secret_file, clients), [
        f"authentication: CurveZMQ ({'new key pair in' if created else 'keys in'} {store.root}); "
        f"{len(AllowedClients(clients).keys())} clients allowed",
        f"server public key: {store.server_public_key()} (remote clients need it: `mofind keys`)",
        "Blender on this machine enrols itself; enrol another client with `mofind keys allow KEY --name NAME`",
    ]


def _cluster_searcher(args: argparse.Namespace):
    """Join the Ray cluster and return `Backend`'s searcher factory: the index's chunks on shard actors."""
    from functools import partial

    import ray

    from mofind.index.cluster import ShardedSearcher, connect

    connect(args.cluster)
    shards = args.shards or max(1, sum(1 for node in ray.nodes() if node.get("Alive")))
    return partial(ShardedSearcher, shards=shards, timeout=args.shard_timeout, threads=max(1, args.threads))


def _mofind_command() -> str:
    """How to call `mofind` from a shell: the venv's script when it is not on PATH (as after `make run`)."""
    import shutil

    script = Path(sys.argv[0])
    if script.name == "mofind" and shutil.which("mofind") != str(script.resolve()) and script.exists():
        return str(script)
    return "mofind"
