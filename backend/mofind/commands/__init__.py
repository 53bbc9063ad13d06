"""One module per CLI command (see mofind.cli)."""

from __future__ import annotations

import argparse

TEXT_PRECISIONS = ("int8", "fp32")  # mofind.model.lean_bert.PRECISIONS, spelled here so --help imports no torch


def add_text_precision(parser: argparse.ArgumentParser) -> None:
    """`--text-precision`, for the commands that encode prompts (serve, query, eval)."""
    parser.add_argument("--text-precision", choices=TEXT_PRECISIONS, default="int8",
                        help="what the text tower runs in on a CPU: int8 (default; twice as fast for one prompt, "
                             "retrieval unchanged within noise) or fp32 (see docs/architecture.md)")
