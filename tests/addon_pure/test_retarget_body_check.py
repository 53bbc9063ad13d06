"""The body check that stops Apply from twisting a rig silently (pure Python)."""

from __future__ import annotations

import importlib
import re

import pytest

from addon_pure.retarget_fixtures import mixamo_spec, rest_matrices


@pytest.fixture(scope="module")
def check(addon_pkg):
    return importlib.import_module("mofind_addon.retarget.body_check")


@pytest.fixture(scope="module")
def mapping(addon_pkg):
    return importlib.import_module("mofind_addon.retarget.mapping")


@pytest.fixture(scope="module")
def rig(mapping):
    names, parents, _ = rest_matrices(mixamo_spec())
    return list(names), [int(p) for p in parents], mapping.detect_bone_map(names)


def test_a_complete_map_passes_every_scope_and_is_cut_to_it(check, rig):
    names, parents, found = rig
    assert check.restrict_to_scope(found, names, parents, "FULL").smpl_to_bone == found.smpl_to_bone
    arms = check.restrict_to_scope(found, names, parents, "ARMS")
    assert set(arms.smpl_to_bone) == {f"{s}_{p}" for s in ("left", "right")
                                      for p in ("collar", "shoulder", "elbow", "wrist")}
    assert "pelvis" not in check.restrict_to_scope(found, names, parents, "UPPER").smpl_to_bone
    assert set(check.restrict_to_scope(found, names, parents, "LOWER").smpl_to_bone) >= {"pelvis", "left_knee"}


@pytest.mark.parametrize("dropped, named", [
    (("pelvis", "neck", "head"), "no bone for pelvis, neck, head"),
    (("spine1", "spine2", "spine3"), "no bone for a spine bone (spine1, spine2 or spine3)"),
    (("right_knee",), "no bone for right_knee"),
    (("left_wrist", "left_elbow"), "no bone for left_elbow, left_wrist"),
])
def test_gaps_in_the_full_body_are_refused_by_name(check, mapping, rig, dropped, named):
    names, parents, found = rig
    holed = mapping.BoneMap({j: b for j, b in found.smpl_to_bone.items() if j not in dropped}, [], found.preset)
    with pytest.raises(mapping.BoneMapError, match=re.escape(named)) as error:
        check.restrict_to_scope(holed, names, parents, "FULL", "Hero")
    assert "Hero: Apply refused (Full Body)" in str(error.value)
    assert check.restrict_to_scope(holed, names, parents, "MAPPED").smpl_to_bone == holed.smpl_to_bone


def test_bones_out_of_hierarchy_order_are_named_even_for_mapped_bones_only(check, mapping, rig):
    names, parents, found = rig
    swapped = dict(found.smpl_to_bone, spine3="mixamorig:Head", head="mixamorig:Spine2")
    with pytest.raises(mapping.BoneMapError) as error:
        check.restrict_to_scope(mapping.BoneMap(swapped, [], None), names, parents, "MAPPED")
    assert "neck -> 'mixamorig:Neck' sits above spine3 -> 'mixamorig:Head'" in str(error.value)
    assert "head -> 'mixamorig:Spine2' sits above neck -> 'mixamorig:Neck'" in str(error.value)
    crossed = dict(found.smpl_to_bone, left_knee="mixamorig:RightLeg", right_knee="mixamorig:LeftLeg")
    with pytest.raises(mapping.BoneMapError, match="left_knee -> 'mixamorig:RightLeg' is not below left_hip"):
        check.restrict_to_scope(mapping.BoneMap(crossed, [], None), names, parents, "FULL")


def test_unknown_scope_is_a_clear_error(check, mapping, rig):
    names, parents, found = rig
    with pytest.raises(mapping.BoneMapError, match="unknown body scope 'LEGS'"):
        check.restrict_to_scope(found, names, parents, "LEGS")
