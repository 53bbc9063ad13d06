"""The results: one row per take (key pose, short unique name, score, duration, range), the selected take's
details (its pose strip across the panel, full path, what matched) and what to do with it.

Rows are drawn by hand instead of a UIList: a list row is one line, which at the sidebar's default
width cuts names and numbers to "d…"; here a row takes as many lines as its text needs.
"""

from __future__ import annotations

import bpy

from .. import service
from ..dependencies import numpy_available
from ..ui.text import draw_wrapped, fitting_lines, text_width, ui_scale, wrapped_lines
from .base import MoFindPanel, draw_numpy_notice

PAGE_SIZE = 5
ROW_ICON_SCALE = 2.0  # a square pose two text lines high


def _thumbnails():
    running = service.active()
    return running.thumbnails if running is not None else None


def confidence_text(confidence: float, calibrated: bool = True) -> str:
    """'83% sure'; '~83% sure' when the backend's model has no calibration (its own estimate); '' when not said."""
    if confidence < 0:
        return ""
    return f"{'' if calibrated else '~'}{round(confidence * 100)}% sure"


def row_facts(item, calibrated: bool = True) -> list[str]:
    """What a row says besides the name, in reading order: score, confidence, length, range."""
    return [f"score {item.score:.2f}", confidence_text(item.confidence, calibrated), f"{item.duration:.1f} s",
            f"frames {item.start_frame}–{item.end_frame}"]


def draw_result_row(layout, context, item, index: int, active: bool, thumbnails) -> None:
    """Key pose on the left; the name (a button: click selects, tooltip is the full path) and the facts
    beside it on as many lines as they need. The radio icon marks the selected row and left-aligns the text."""
    row = layout.row()
    pose = thumbnails.key_pose(item.thumbnail) if thumbnails is not None and item.thumbnail else 0
    picture = row.column()
    picture.ui_units_x = ROW_ICON_SCALE
    if pose:
        picture.template_icon(icon_value=pose, scale=ROW_ICON_SCALE)
    else:
        picture.label(text="", icon="ARMATURE_DATA")
    column = row.column(align=True)
    reserved = ROW_ICON_SCALE + 1.0  # the pose, the gap and the radio icon
    for number, line in enumerate(wrapped_lines(context, item.short_name or item.name, reserved_units=reserved)):
        icon = ("RADIOBUT_ON" if active else "RADIOBUT_OFF") if number == 0 else "BLANK1"
        left = column.row(align=True)
        left.alignment = "LEFT"  # a button centres its text; a LEFT row shrinks it to the text, at the left
        left.operator("mofind.select_result", text=line, icon=icon, emboss=active, depress=active).index = index
    facts = row_facts(item, context.window_manager.mofind.confidence_calibrated)
    if item.matched and item.matched != "motion":
        facts.append(f"by {item.matched}")
    for line in fitting_lines(context, facts, reserved_units=reserved):
        column.label(text=line, icon="BLANK1")


def draw_quality(layout, context, session) -> None:
    """The backend's own verdict: an honest banner when nothing really matches, and words it does not know."""
    if session.no_good_match:
        box = layout.box()
        box.alert = True
        draw_wrapped(box, context, session.quality_message or "No clip matches this prompt well; "
                     "these are only the closest ones.", icon="ERROR", reserved_units=0.6)
    words = [word.strip() for word in session.unknown_words.split(",") if word.strip()]
    if words and not all(word in session.quality_message for word in words):
        draw_wrapped(layout, context, f"Words the model does not know: {session.unknown_words}", icon="QUESTION")


def draw_pose_strip(layout, context, poses: list[int]) -> None:
    """The strip's poses side by side across the whole width, each as large as the width allows."""
    unit = 20.0 * ui_scale(context)
    scale = max(1.0, (text_width(context, reserved_units=0.8) + unit) / len(poses) / unit - 0.15)
    row = layout.row(align=True)
    row.alignment = "CENTER"
    for pose in poses:
        row.template_icon(icon_value=pose, scale=scale)


def draw_details(layout, context, item, thumbnails) -> None:
    calibrated = context.window_manager.mofind.confidence_calibrated
    box = layout.box()
    poses = thumbnails.poses(item.thumbnail) if thumbnails is not None and item.thumbnail else []
    if poses:
        draw_pose_strip(box, context, poses)
    draw_wrapped(box, context, item.source or item.clip_id, icon="FILE", reserved_units=0.6)
    facts = [f"{item.duration:.1f} s at {item.fps:g} fps", f"frames {item.start_frame}–{item.end_frame}",
             f"score {item.score:.3f}", confidence_text(item.confidence, calibrated)]
    for line in fitting_lines(context, facts, reserved_units=0.6):
        box.label(text=line)
    if item.matched:
        draw_wrapped(box, context, f"Matched by {item.matched}", icon="VIEWZOOM", reserved_units=0.6)
    if item.labels or item.skeleton:
        draw_wrapped(box, context, " · ".join(filter(None, (item.labels, item.skeleton))), icon="BOOKMARKS",
                     reserved_units=0.6)


class MOFIND_PT_results(MoFindPanel, bpy.types.Panel):
    bl_label = "Results"
    bl_parent_id = "MOFIND_PT_main"

    @classmethod
    def poll(cls, context):
        return len(context.window_manager.mofind.results) > 0

    def draw(self, context):
        layout = self.layout
        session = context.window_manager.mofind
        if session.results_stale:
            box = layout.box()
            box.alert = True
            draw_wrapped(box, context, f"Older results {session.results_heading}: the last search failed "
                         "(see the message above).", icon="ERROR", reserved_units=0.6)
        else:
            heading = f"{len(session.results)} clips {session.results_heading}"
            if not session.status.startswith(heading):  # the status line says it already right after a search
                draw_wrapped(layout, context, heading)
            draw_quality(layout, context, session)
        if session.offline_message:
            box = layout.box()
            box.alert = True
            draw_wrapped(box, context, session.offline_message, icon="ERROR", reserved_units=0.6)
        self.draw_rows(context, layout, session)
        if not 0 <= session.active_result < len(session.results):
            return
        draw_details(layout, context, session.results[session.active_result], _thumbnails())
        self.draw_actions(context, layout, session)

    @staticmethod
    def draw_rows(context, layout, session) -> None:
        count = len(session.results)
        pages = (count + PAGE_SIZE - 1) // PAGE_SIZE
        page = min(max(session.results_page, 1), pages)
        if pages > 1:
            row = layout.row(align=True)
            back = row.row(align=True)
            back.enabled = page > 1
            turn = back.operator("mofind.results_page", text="", icon="TRIA_LEFT")
            turn.step, turn.page_size = -1, PAGE_SIZE
            row.label(text=f"Page {page} of {pages}")
            ahead = row.row(align=True)
            ahead.enabled = page < pages
            turn = ahead.operator("mofind.results_page", text="", icon="TRIA_RIGHT")
            turn.step, turn.page_size = 1, PAGE_SIZE
        thumbnails = _thumbnails()
        column = layout.column()
        for index in range((page - 1) * PAGE_SIZE, min(page * PAGE_SIZE, count)):
            draw_result_row(column, context, session.results[index], index, index == session.active_result,
                            thumbnails)

    @staticmethod
    def draw_actions(context, layout, session) -> None:
        armature = context.active_object is not None and context.active_object.type == "ARMATURE"
        has_numpy = numpy_available()
        options = context.scene.mofind
        if has_option(options, "body_scope"):  # animating part of the body is a visible, explicit choice
            layout.prop(options, "body_scope")
        row = layout.row(align=True)
        row.enabled = armature and has_numpy
        row.operator("mofind.apply_clip", icon="ARMATURE_DATA")
        if session.preview_active:
            row.operator("mofind.preview_end", text="Keep", icon="CHECKMARK").keep = True
            row.operator("mofind.preview_end", text="Revert", icon="LOOP_BACK").keep = False
        else:
            row.operator("mofind.preview", icon="PLAY")
        if not has_numpy:
            draw_numpy_notice(layout, context)
        elif not armature:
            draw_wrapped(layout, context, "Select an armature to apply clips", icon="INFO")
        row = layout.row(align=True)
        row.operator("mofind.explain", icon="QUESTION")
        row.operator("mofind.similar", icon="ZOOM_ALL")


#: Apply options in the order the panel lists them; options this build's properties lack are skipped.
APPLY_OPTIONS = ("start_frame", "set_frame_range", "whole_take", "in_place", "plant_feet", "match_fps", "push_to_nla")


def has_option(options, name: str) -> bool:
    return name in options.bl_rna.properties


class MOFIND_PT_apply_options(MoFindPanel, bpy.types.Panel):
    bl_label = "Apply Options"
    bl_parent_id = "MOFIND_PT_results"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        options = context.scene.mofind
        column = layout.column(align=True)
        for name in APPLY_OPTIONS:
            if has_option(options, name):
                column.prop(options, name)


CLASSES = (MOFIND_PT_results, MOFIND_PT_apply_options)
