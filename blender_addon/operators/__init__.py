"""Thin operators: each calls one core function and turns failures into reports."""

from . import apply, bone_map, bulk_index, connection, explain, keys, preview, report, results, search

CLASSES = (
    *search.CLASSES, *apply.CLASSES, *bone_map.CLASSES, *preview.CLASSES, *explain.CLASSES, *bulk_index.CLASSES,
    *connection.CLASSES, *keys.CLASSES, *report.CLASSES, *results.CLASSES,
)
