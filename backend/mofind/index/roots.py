"""The folders an operator lets clients index (`mofind serve --library-root DIR`, `library_roots` in mofind.toml).

Paths are compared after resolving symlinks and `..` (os.path.realpath), so `/mocap/../etc` or a link
inside a root that points out of it is outside. Indexed sources are stored resolved, so they are
compared lexically (`holds_source`).
"""

from __future__ import annotations

import os
from pathlib import Path


class LibraryRoots:
    def __init__(self, roots=()):
        self.roots = tuple(dict.fromkeys(os.path.realpath(os.path.expanduser(os.fspath(r))) for r in roots))

    def __bool__(self) -> bool:
        return bool(self.roots)

    def __iter__(self):
        return iter(self.roots)

    def holds(self, path: str | Path) -> bool:
        """Is `path` (after resolving links) one of the roots or inside one?"""
        return self.holds_source(os.path.realpath(os.path.expanduser(os.fspath(path))))

    def holds_source(self, resolved: str) -> bool:
        """`holds` for a path that is already resolved (an indexed clip's source)."""
        return any(resolved == root or resolved.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    def describe(self) -> str:
        return ", ".join(self.roots) if self.roots else "none"
