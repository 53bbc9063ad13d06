"""The part/column table: internal consistency and agreement with the official columns.json."""

from __future__ import annotations

import json

import pytest

from mofind.features import parts


def test_fourteen_parts_in_patch_column_order_with_official_dofs():
    assert parts.PART_NAMES == ("global", "pelvis", "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle",
                                "l_ankle", "lumbar", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow")
    assert list(parts.PART_DOFS) == [3, 3, 3, 3, 1, 1, 1, 1, 3, 2, 3, 3, 1, 1]
    assert all(len(p.cols41) == p.dof for p in parts.PARTS)


def test_used_indices_are_the_parts_columns_and_unique():
    assert len(parts.USED_INDICES) == 29 == sum(parts.PART_DOFS)
    assert len(set(parts.USED_INDICES)) == 29
    assert all(0 <= c < 41 for c in parts.USED_INDICES)
    assert len(parts.COLUMNS41) == 41 and len(set(parts.COLUMNS41)) == 41
    assert parts.COLUMNS29 == tuple(parts.COLUMNS41[c] for c in parts.USED_INDICES)
    flat29 = [c for cols in parts.PART_COLS29 for c in cols]
    assert flat29 == list(range(29))


def test_each_part_owns_one_sixteen_pixel_column_of_the_image():
    ranges = parts.PART_PIXEL_RANGES
    assert ranges[0][0] == 0 and ranges[-1][1] == parts.IMAGE_WIDTH == 224
    assert all(b - a == parts.PATCH_WIDTH for a, b in ranges)
    assert all(ranges[k][1] == ranges[k + 1][0] for k in range(len(ranges) - 1))


def test_labels_name_the_same_side_and_joint_as_the_part():
    labels = dict(zip(parts.PART_NAMES, parts.PART_LABELS))
    assert labels["l_shoulder"] == "left shoulder" and labels["r_knee"] == "right knee"
    for name, label in labels.items():
        if name.startswith("l_"):
            assert label.startswith("left ")
        elif name.startswith("r_"):
            assert label.startswith("right ")
        else:
            assert "left" not in label and "right" not in label
    # the part's angle columns are about that joint
    for p in parts.PARTS:
        if p.name.startswith(("r_", "l_")):
            joint = p.name[2:]
            side = p.name[0]
            for c in p.cols41:
                col = parts.COLUMNS41[c]
                assert col.endswith(f"_{side}"), col
                assert {"hip": "hip", "knee": "knee", "ankle": "ankle", "shoulder": "arm",
                        "elbow": "elbow"}[joint] in col


@pytest.mark.needs_shared
def test_table_equals_official_columns_json(reference_dir):
    official = json.loads((reference_dir / "angles" / "columns.json").read_text())
    assert list(parts.COLUMNS41) == official["columns41"]
    assert list(parts.USED_INDICES) == official["ALL_USED_INDICES"]
    assert list(parts.COLUMNS29) == official["columns29"]
    for k, row in enumerate(official["parts"]):
        p = parts.PARTS[k]
        assert (p.name, p.dof, list(p.cols41)) == (row["part"], row["dof"], row["cols41"])
        assert list(parts.PART_COLS29[k]) == row["cols29"]
        assert list(parts.PART_PIXEL_RANGES[k]) == row["image_width_pixels"]
        assert row["patch_column"] == k
