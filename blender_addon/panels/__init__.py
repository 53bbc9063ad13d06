"""The MoFind sidebar: search, results, explanation and bulk indexing panels."""

from . import explain, index, main, results

CLASSES = (*main.CLASSES, *results.CLASSES, *explain.CLASSES, *index.CLASSES)
