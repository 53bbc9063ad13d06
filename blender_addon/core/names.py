"""Short names for result rows: the shortest path suffix that tells each take apart (no bpy).

A library often holds `walk_001.bvh` in several folders; the file stem alone would show the same
name twice. Each take gets just enough parent folders to be unique, and the full path stays in
the row's tooltip.
"""

from __future__ import annotations

from pathlib import PurePosixPath


def path_parts(source: str) -> tuple[str, ...]:
    """The path's components, any OS's separators, with the file suffix dropped from the last one."""
    path = PurePosixPath(source.replace("\\", "/"))
    parts = [part for part in path.parts if part not in ("/", "")]
    if not parts:
        return ()
    parts[-1] = path.stem
    return tuple(parts)


def short_names(sources: list[str], fallbacks: list[str] | None = None) -> list[str]:
    """For each source path, its shortest suffix (in folders) that no other distinct source shares.

    The same path twice (two windows of one take) gets the same name: the frame range tells them
    apart. An empty source falls back to `fallbacks[i]` (the clip id).
    """
    fallbacks = fallbacks or [""] * len(sources)
    parts = [path_parts(source) for source in sources]
    distinct = set(parts)
    names = []
    for own, fallback in zip(parts, fallbacks):
        if not own:
            names.append(fallback)
            continue
        others = [other for other in distinct if other != own]
        depth = 1
        while depth < len(own) and any(other[-depth:] == own[-depth:] for other in others):
            depth += 1
        names.append("/".join(own[-depth:]))
    return names
