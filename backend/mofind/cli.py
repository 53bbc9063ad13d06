"""The `mofind` command line: a thin dispatcher over `mofind.commands.<name>` modules.

Each command module defines `HELP`, `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their command runs, so `mofind --help` starts fast and
`mofind inspect` never pays for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "inspect": "Describe motion files: skeleton, fps, units, up axis, SMPL-22 mapping.",
    "train": "Train a model (InfoNCE + MLM) on HumanML3D, KIT-ML or a labelled BVH folder.",
    "eval": "Evaluate retrieval (All and batch-32 protocols, both directions).",
    "index": "Index motion files or folders into a MoFind index directory.",
    "query": "Search an index with a text query.",
    "serve": "Run the ZeroMQ backend that the Blender add-on talks to.",
    "model": "Manage model folders: import the paper's checkpoints, vocabulary, match-quality calibration.",
    "keys": "Show the server's CurveZMQ key and enrol or create client keys.",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mofind", description="Fine-grained text-to-motion search.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints help or the error, then exits
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f"mofind.commands.{name}")
    parser = argparse.ArgumentParser(prog=f"mofind {name}", description=module.HELP)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
