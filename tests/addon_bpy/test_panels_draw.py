"""Every panel and the preferences draw without error, against Blender's real UI API.

Headless Blender has no regions, so `draw()` never runs on its own. Here each draw function gets
a recording layout that checks every call against `bpy.types.UILayout`'s RNA description: the
method exists, its keyword arguments exist, icons are real icon names, `prop()` names a real
property of its data, `operator()` a registered operator, and settings on the returned operator
properties exist. A typo in a panel fails here instead of in a user's sidebar.
"""

from __future__ import annotations

import pytest

from addon_bpy import rigs
from addon_bpy.conftest import ADDON_MODULE

pytestmark = pytest.mark.bpy


class OperatorProperties:
    def __init__(self, rna):
        object.__setattr__(self, "_names", set(rna.properties.keys()))

    def __setattr__(self, name, value):
        assert name in self._names, f"operator has no property {name!r}"


class RecordingLayout:
    """Stands in for a UILayout: validates calls against the real RNA and records what was drawn."""

    def __init__(self, bpy, drawn: list):
        object.__setattr__(self, "_bpy", bpy)
        object.__setattr__(self, "_drawn", drawn)
        rna = bpy.types.UILayout.bl_rna
        object.__setattr__(self, "_functions", rna.functions)
        object.__setattr__(self, "_properties", set(rna.properties.keys()))
        object.__setattr__(self, "_icons", set(rna.functions["label"].parameters["icon"].enum_items.keys()))

    def __setattr__(self, name, value):
        assert name in self._properties, f"UILayout has no attribute {name!r}"

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        assert name in self._functions, f"UILayout has no method {name!r}"
        parameters = set(self._functions[name].parameters.keys())

        def call(*args, **kwargs):
            unknown = set(kwargs) - parameters
            assert not unknown, f"UILayout.{name}() has no parameter(s) {unknown}"
            if "icon" in kwargs:
                assert kwargs["icon"] in self._icons, f"unknown icon {kwargs['icon']!r}"
            check = getattr(self, f"_check_{name}", None)
            result = check(*args, **kwargs) if check else None
            self._drawn.append((name, args, kwargs))
            if name in {"row", "column", "box", "split", "grid_flow", "column_flow"}:
                return RecordingLayout(self._bpy, self._drawn)
            return result

        return call

    @staticmethod
    def _has_property(data, name):
        assert name in data.bl_rna.properties.keys(), f"{data.bl_rna.identifier} has no property {name!r}"

    def _check_prop(self, data, prop, **kwargs):
        self._has_property(data, prop)

    def _check_prop_search(self, data, prop, search_data, search_prop, **kwargs):
        self._has_property(data, prop)
        self._has_property(search_data, search_prop)

    def _check_operator(self, idname, **kwargs):
        module, name = idname.split(".")
        rna = getattr(getattr(self._bpy.ops, module), name).get_rna_type()
        return OperatorProperties(rna)

    def _check_template_list(self, listtype, list_id, dataptr, propname, active_dataptr, active_propname, **kw):
        assert hasattr(self._bpy.types, listtype), f"UIList {listtype} is not registered"
        self._has_property(dataptr, propname)
        self._has_property(active_dataptr, active_propname)


class AsSelf:
    """`self` for a draw function: the real object (or panel class) plus a recording layout."""

    def __init__(self, real, layout):
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "layout", layout)

    def __getattr__(self, name):
        return getattr(self._real, name)


def draw_everything(bpy, addon) -> list:
    """Call poll/draw_header/draw of every panel and the preferences; returns what was drawn."""
    context = bpy.context
    drawn: list = []
    for cls in addon.panels.CLASSES:
        if hasattr(cls, "poll") and not cls.poll(context):
            continue
        layout = RecordingLayout(bpy, drawn)
        if hasattr(cls, "draw_header"):
            cls.draw_header(AsSelf(cls, layout), context)
        cls.draw(AsSelf(cls, layout), context)
    prefs = context.preferences.addons[ADDON_MODULE].preferences
    type(prefs).draw(AsSelf(prefs, RecordingLayout(bpy, drawn)), context)
    return drawn


def labels(drawn) -> list[str]:
    return [kwargs.get("text", "") for name, _, kwargs in drawn if name == "label"]


def operators(drawn) -> list[str]:
    return [args[0] for name, args, _ in drawn if name == "operator"]


def texts(drawn) -> list[str]:
    """Every string shown: labels and button captions."""
    return [kwargs.get("text", "") for name, _, kwargs in drawn if name in ("label", "operator")]


def shown(drawn, fragment: str) -> bool:
    return any(fragment in text for text in texts(drawn))


def add_results(session, sources, **fields):
    for i, source in enumerate(sources):
        item = session.results.add()
        item.name, item.clip_id, item.source = f"take_{i}", f"{i:016x}", source
        item.score, item.duration, item.start_frame, item.end_frame, item.fps = 0.5 - i / 10, 3.0, 0, 90, 30.0
        item.labels, item.skeleton = "wave", "bandai"
        for name, value in fields.items():
            setattr(item, name, value)


def test_empty_session_draws_search_and_index(bpy, addon):
    drawn = draw_everything(bpy, addon)
    assert "mofind.search" in operators(drawn) and "mofind.index_folder" in operators(drawn)
    assert "mofind.apply_clip" not in operators(drawn)  # no results yet: no results panel
    assert "mofind.ping" in operators(drawn)


def test_full_session_draws_every_panel(bpy, addon):
    session = bpy.context.window_manager.mofind
    add_results(session, [f"/mocap/take_{i}.bvh" for i in range(3)])
    session.results_heading = "for 'wave'"
    token = session.explanation.add()
    token.word, token.part, token.t_start, token.t_end, token.similarity = "wave", "left elbow", 0.4, 0.8, 0.5
    session.explained_clip = session.results[0].clip_id
    session.job_state, session.job_done, session.job_total, session.job_message = "RUNNING", 3, 10, "Indexing"
    session.preview_active = True
    rig = rigs.build_mixamo_rig()
    bpy.ops.mofind.detect_bones(armature=rig.name)
    session.status, session.status_level = "3 clips for 'wave'", "OK"

    drawn = draw_everything(bpy, addon)
    names = operators(drawn)
    for idname in ("mofind.apply_clip", "mofind.preview_end", "mofind.explain", "mofind.similar",
                   "mofind.index_cancel", "mofind.detect_bones", "mofind.select_result"):
        assert idname in names, idname
    assert "mofind.preview" not in names  # Keep/Revert replace Preview while one runs
    assert "take_0" in texts(drawn)
    assert shown(drawn, "left elbow") and "3 clips for 'wave'" in labels(drawn)
    assert any(name == "progress" for name, _, _ in drawn)
    assert sum(1 for name, _, _ in drawn if name == "prop_search") == 22  # one bone field per joint


def test_recording_layout_catches_mistakes(bpy, addon):
    layout = RecordingLayout(bpy, [])
    options = bpy.context.scene.mofind
    with pytest.raises(AssertionError, match="no property 'promt'"):
        layout.prop(options, "promt")
    with pytest.raises(AssertionError, match="unknown icon"):
        layout.label(text="x", icon="NOT_AN_ICON")
    with pytest.raises(AssertionError, match="no method"):
        layout.lable(text="x")
    with pytest.raises(AssertionError, match="no property 'keepp'"):
        layout.operator("mofind.preview_end").keepp = True
