"""One module per CLI command (see mofind.cli)."""

from __future__ import annotations

import argparse

from mofind.model.config import TEXT_PRECISIONS


def add_text_precision(parser: argparse.ArgumentParser) -> None:
    """`--text-precision`, for the commands that encode prompts (serve, query, eval)."""
    parser.add_argument("--text-precision", choices=TEXT_PRECISIONS, default="auto",
                        help="what the text tower runs in on a CPU: auto (default: int8, fp16 or fp32, whichever is "
                             "fastest on this machine, measured once and cached; a more exact one within 10%% of "
                             "the fastest wins), or one of them by name (see docs/architecture.md)")
