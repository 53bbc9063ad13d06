"""The MoFind sidebar: search, results, explanation and bulk indexing panels."""

from . import bone_map, explain, index, main, results

CLASSES = (*main.CLASSES, *results.CLASSES, *explain.CLASSES, *bone_map.CLASSES, *index.CLASSES)
