"""Bad BVH input: each defect raises a specific MotionIOError subclass naming the file and the line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fixtures.synthetic import make_skeleton, write_action_bvh
from mofind.io import BVHParseError, MotionIOError, SkeletonMappingError, forward_kinematics, read_bvh, write_bvh
from mofind.skeleton import load_motion


@pytest.fixture
def good(tmp_path) -> Path:
    return write_action_bvh(tmp_path / "good.bvh", "bandai", "wave_left", seconds=0.5)


def _lines(path: Path) -> list[str]:
    return path.read_text().split("\n")


def _motion_line(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if line.strip() == "MOTION")


def _write(tmp_path: Path, lines: list[str], name="bad.bvh") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines))
    return path


def test_truncated_last_frame_names_file_and_line(tmp_path, good):
    lines = [line for line in _lines(good) if line]
    lines[-1] = " ".join(lines[-1].split()[:40])  # cut the last frame short
    bad = _write(tmp_path, lines)
    with pytest.raises(BVHParseError) as err:
        read_bvh(bad)
    assert err.value.path == str(bad) and err.value.line == len(lines)
    assert "bad.bvh" in str(err.value) and f":{len(lines)}" in str(err.value)
    assert "truncated" in str(err.value)


def test_missing_frames_reports_declared_count(tmp_path, good):
    lines = [line for line in _lines(good) if line][:-3]
    with pytest.raises(BVHParseError, match="declares 15 frames but holds only 12") as err:
        read_bvh(_write(tmp_path, lines))
    assert err.value.line == len(lines)


def test_extra_frames_are_an_error(tmp_path, good):
    lines = [line for line in _lines(good) if line]
    lines.append(lines[-1])
    with pytest.raises(BVHParseError, match="declares 15 frames but holds 16"):
        read_bvh(_write(tmp_path, lines))


def test_non_numeric_value_names_its_line(tmp_path, good):
    lines = _lines(good)
    target = _motion_line(lines) + 3 + 4  # 1-based: MOTION, Frames, Frame Time, then data row 5
    values = lines[target - 1].split()
    values[7] = "1.0abc"
    lines[target - 1] = " ".join(values)
    with pytest.raises(BVHParseError, match="non-numeric value '1.0abc'") as err:
        read_bvh(_write(tmp_path, lines))
    assert err.value.line == target


def test_missing_motion_section(tmp_path, good):
    lines = _lines(good)[: _motion_line(_lines(good))]
    with pytest.raises(BVHParseError, match="no MOTION section") as err:
        read_bvh(_write(tmp_path, lines))
    assert err.value.path.endswith("bad.bvh")


def test_unknown_channel_name(tmp_path, good):
    lines = _lines(good)
    row = next(i for i, line in enumerate(lines) if "CHANNELS" in line and i > 5)
    lines[row] = lines[row].replace("Zrotation", "Wrotation")
    with pytest.raises(BVHParseError, match="unknown channel name 'Wrotation'") as err:
        read_bvh(_write(tmp_path, lines))
    assert err.value.line == row + 1


def test_non_numeric_offset(tmp_path, good):
    lines = _lines(good)
    row = next(i for i, line in enumerate(lines) if "OFFSET" in line and i > 8)
    lines[row] = lines[row].replace("OFFSET", "OFFSET x")
    with pytest.raises(BVHParseError, match="non-numeric value in OFFSET") as err:
        read_bvh(_write(tmp_path, lines))
    assert err.value.line == row + 1


def test_unbalanced_braces_and_bad_frame_time(tmp_path, good):
    lines = _lines(good)
    no_close = [line for i, line in enumerate(lines) if not (line.strip() == "}" and i == _motion_line(lines) - 1)]
    with pytest.raises(BVHParseError, match="unclosed"):
        read_bvh(_write(tmp_path, no_close, "a.bvh"))
    zero_time = [("Frame Time: 0" if line.startswith("Frame Time") else line) for line in lines]
    with pytest.raises(BVHParseError, match="frame time must be positive"):
        read_bvh(_write(tmp_path, zero_time, "b.bvh"))


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(BVHParseError, match="no MOTION"):
        read_bvh(_write(tmp_path, [""], "empty.bvh"))
    with pytest.raises(MotionIOError, match="cannot read file"):
        read_bvh(tmp_path / "absent.bvh")


def test_unmappable_skeleton_raises_mapping_error(tmp_path):
    skeleton = make_skeleton("bandai")
    skeleton.names = [f"bone{i:02d}" for i in range(skeleton.num_joints)]
    quats = np.zeros((3, skeleton.num_joints, 4))
    quats[..., 0] = 1.0
    path = write_bvh(tmp_path / "robot.bvh", skeleton, 30.0, quats, np.zeros((3, 3)))
    read_bvh(path)  # the file itself is fine
    with pytest.raises(SkeletonMappingError, match="no joint found for pelvis, left_hip") as err:
        load_motion(path)
    assert err.value.path == str(path)


def test_crlf_tabs_and_blank_lines_parse_like_the_clean_file(tmp_path, good):
    text = good.read_text()
    messy = "\r\n".join("\t" + line.replace(" ", " \t ") + "\r\n" if line else "" for line in text.split("\n"))
    path = tmp_path / "messy.bvh"
    path.write_bytes(messy.encode())
    clean, dirty = read_bvh(good), read_bvh(path)
    assert dirty.skeleton.names == clean.skeleton.names
    np.testing.assert_array_equal(dirty.values, clean.values)
    np.testing.assert_allclose(forward_kinematics(dirty), forward_kinematics(clean))
