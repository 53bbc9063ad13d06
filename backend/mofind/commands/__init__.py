"""One module per CLI command (see mofind.cli)."""
