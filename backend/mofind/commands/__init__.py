"""One module per CLI command (see mofind.cli)."""

from __future__ import annotations

import argparse

from mofind.model.config import TEXT_PRECISIONS


def add_text_precision(parser: argparse.ArgumentParser) -> None:
    """`--text-precision`, for the commands that encode prompts (serve, query, eval)."""
    parser.add_argument("--text-precision", choices=TEXT_PRECISIONS, default="int8",
                        help="what the text tower runs in on a CPU: int8 (default; about twice as fast for one "
                             "prompt, retrieval within about one prompt in a hundred) or fp32 (see "
                             "docs/architecture.md)")
