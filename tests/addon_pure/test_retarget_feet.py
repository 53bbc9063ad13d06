"""Planted feet: contact detection, two-bone leg IK, and skating on real takes with and without it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from addon_pure.retarget_fixtures import mixamo_spec, rest_matrices

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def feet(addon_pkg):
    return importlib.import_module("mofind_addon.retarget.feet")


@pytest.fixture(scope="module")
def core(addon_pkg):
    return importlib.import_module("mofind_addon.retarget.core")


def stepping_ankle(fps=30.0, steps=4):
    """An ankle that stands 0.5 s, swings 0.5 s forward by 0.7 m (lifted 12 cm), and so on."""
    frames = []
    x = 0.0
    for _ in range(steps):
        stand = int(0.5 * fps)
        frames += [(x + 0.002 * i, 0.0, 0.08) for i in range(stand)]  # a slight roll, 6 cm/s
        swing = int(0.5 * fps)
        for i in range(swing):
            s = (i + 1) / swing
            frames.append((x + 0.7 * s, 0.0, 0.08 + 0.12 * np.sin(np.pi * s)))
        x += 0.7
    return np.array(frames)


def test_contacts_are_the_standing_phases(feet):
    ankle = stepping_ankle()
    contact = feet.foot_contacts(ankle, 30.0)
    segments = feet.contact_segments(contact)
    assert len(segments) == 4
    for (a, b), start in zip(segments, range(0, 120, 30)):
        assert start <= a <= start + 2 and start + 13 <= b <= start + 16  # the stand, trimmed where speed rises
    assert not contact[20:28].any()  # mid-swing


def test_skating_is_the_ankle_path_during_contacts(feet):
    ankle = stepping_ankle()
    contact = feet.foot_contacts(ankle, 30.0)
    skids = feet.skating_per_contact(ankle, contact)
    assert skids.shape == (4,) and np.all(skids < 0.04) and np.all(skids > 0.0)
    pinned, weight = feet.pinned_targets(ankle, contact, ease_frames=3)
    assert feet.skating_per_contact(pinned, contact) == pytest.approx(np.zeros(4), abs=1e-12)
    second = feet.contact_segments(contact)[1]
    assert weight.max() == 1.0 and 0.0 < weight[second[0] - 1] < 1.0  # eased in before the contact


def test_two_bone_ik_reaches_the_goal_keeping_lengths_and_the_knee_plane(feet):
    hip = np.array([[0.1, 0.0, 1.0]] * 3)
    knee = np.array([[0.1, -0.05, 0.55]] * 3)
    ankle = np.array([[0.1, 0.0, 0.1]] * 3)
    goal = np.array([[0.1, 0.08, 0.15], [0.15, -0.05, 0.12], [0.1, 0.0, -0.5]])  # the last is out of reach
    thigh_turn, shin_turn = feet.two_bone_ik(hip, knee, ankle, goal)
    new_knee = hip + np.einsum("tij,tj->ti", thigh_turn, knee - hip)
    new_ankle = new_knee + np.einsum("tij,tj->ti", shin_turn, ankle - knee)
    np.testing.assert_allclose(new_ankle[:2], goal[:2], atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip, axis=1), np.linalg.norm(knee - hip, axis=1))
    np.testing.assert_allclose(np.linalg.norm(new_ankle - new_knee, axis=1), np.linalg.norm(ankle - knee, axis=1))
    assert np.all(new_knee[:2, 1] < 0.0)  # the knee still bends forward (-Y)
    reach = np.linalg.norm(knee - hip, axis=1) + np.linalg.norm(ankle - knee, axis=1)
    assert np.linalg.norm(new_ankle[2] - hip[2]) == pytest.approx(reach[2], abs=1e-5)  # straight towards it


@pytest.mark.needs_shared
def test_planted_feet_stop_skating_on_a_real_walk_without_turning_the_legs_away(core, bvh_samples):
    """The Bandai walk onto a rig with other leg proportions: measured as bench/bench_feet.py does."""
    pytest.importorskip("mofind.skeleton")
    sys.path.insert(0, str(REPO))
    from bench import bench_feet

    path = next((p for p in bvh_samples if p.name == "dataset-2_walk_normal_001.bvh"), None)
    if path is None:
        pytest.skip("dataset-2_walk_normal_001.bvh is not in bvh-samples")
    row = bench_feet.measure(bench_feet.payload_from_bvh(path), path.name)
    assert row["contacts"] >= 10
    assert row["without_cm"] > 1.0  # the rig's feet do slide without the fix
    assert row["with_cm"] < 0.2 and row["with_max_cm"] < 1.0

    names, parents, rest = rest_matrices(mixamo_spec())
    mapping = importlib.import_module("mofind_addon.retarget.mapping")
    rig = core.TargetRig(names, parents, rest, mapping.detect_bone_map(names).smpl_to_bone)
    clip = core.SourceClip.from_payload(bench_feet.payload_from_bvh(path))
    plain = core.retarget(clip, rig, core.RetargetOptions(plant_feet=False))
    planted = core.retarget(clip, rig, core.RetargetOptions(plant_feet=True))
    legs = [names.index(f"mixamorig:{s}{b}") for s in ("Left", "Right") for b in ("UpLeg", "Leg", "Foot")]
    others = [i for i in range(len(names)) if i not in legs]
    # Toes, spine and arms keep their keys; the feet keep their world turn (their local turn undoes the shin's).
    np.testing.assert_allclose(planted.rotations[:, others], plain.rotations[:, others], atol=1e-9)
    turn = 2 * np.degrees(np.arccos(np.clip(np.abs(np.sum(planted.rotations[:, legs] * plain.rotations[:, legs],
                                                          axis=-1)), 0, 1)))
    assert np.percentile(turn, 95) < 10.0  # a fix of centimetres, not a different leg pose
