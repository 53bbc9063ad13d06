"""`mofind inspect` through the real CLI entry point, on generated files and the shared samples."""

from __future__ import annotations

import json

import pytest

from fixtures.synthetic import write_action_bvh
from mofind.cli import main


def _run_json(capsys, *files) -> tuple[int, list[dict]]:
    code = main(["inspect", "--json", *map(str, files)])
    return code, json.loads(capsys.readouterr().out)


def test_reports_each_file_and_keeps_going_after_a_bad_one(tmp_path, capsys):
    good_a = write_action_bvh(tmp_path / "a.bvh", "zup", "walk", seconds=1.0)
    bad = tmp_path / "broken.bvh"
    bad.write_text(good_a.read_text().split("MOTION")[0])
    good_b = write_action_bvh(tmp_path / "b.bvh", "cmu", "idle", seconds=0.5)
    code, rows = _run_json(capsys, good_a, bad, good_b)
    assert code == 1
    assert [r["ok"] for r in rows] == [True, False, True]
    assert rows[1]["error_type"] == "BVHParseError" and "broken.bvh" in rows[1]["error"]
    a, b = rows[0], rows[2]
    assert a["skeleton"]["joints"] == 60 and a["skeleton"]["channels_per_joint"] == [3, 6]
    assert a["source_fps"] == 60.0 and a["frames"] == 60 and a["duration_s"] == 1.0
    assert (a["unit"], a["up_axis"]) == ("cm", "Z") and 1.6 < a["height_m"] < 1.8
    assert a["mapping"]["method"] == "preset:iclone_cc"
    assert a["mapping"]["smpl_to_source"]["left_elbow"] == "CC_Base_L_Forearm"
    assert b["unit"] == "cmu" and b["mapping"]["method"] == "preset:cmu_bvh"
    assert b["skeleton"]["rotation_orders"] == ["ZYX"]


def test_text_output_and_success_exit_code(tmp_path, capsys):
    path = write_action_bvh(tmp_path / "take.bvh", "bandai", "wave_left", seconds=1.0)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "22 joints, 132 channels" in out and "preset:bandai" in out and "left_wrist=Hand_L" in out
    assert "30 frames at 30 fps" in out


def test_heuristic_mapping_lists_unmapped_joints(tmp_path, capsys):
    path = write_action_bvh(tmp_path / "take.bvh", "bandai", "idle", seconds=0.3)
    text = path.read_text().replace("Toes_L", "Tip_L").replace("Toes_R", "Tip_R").replace("joint_Root", "Origin")
    text = text.replace("UpperLeg", "Thigh")  # no preset fits any more
    path.write_text(text)
    code, rows = _run_json(capsys, path)
    assert code == 0
    mapping = rows[0]["mapping"]
    assert mapping["method"] == "heuristic"
    assert set(mapping["unmapped"]) >= {"left_foot", "right_foot"}
    assert "left_foot" in mapping["interpolated"]


@pytest.mark.needs_shared
def test_every_shared_sample_inspects_cleanly(bvh_samples, capsys):
    code, rows = _run_json(capsys, *bvh_samples)
    assert code == 0 and len(rows) == len(bvh_samples)
    for row in rows:
        assert row["ok"] and 1.4 < row["height_m"] < 2.1 and row["up_axis"] == "Y"
        assert row["mapping"]["method"].startswith("preset:")
