"""The add-on's own rotation helpers (Blender has no scipy) against scipy's Rotation."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp


@pytest.fixture(scope="module")
def quat(addon_pkg):
    return importlib.import_module("mofind_addon.retarget.quat")


@pytest.fixture(scope="module")
def rotations():
    random = Rotation.random(200, random_state=1)
    half_turns = Rotation.from_rotvec(np.pi * np.eye(3))  # trace -1: the unstable case for naive formulas
    return Rotation.concatenate([random, half_turns, Rotation.identity(1)])


def _canonical(q):
    return np.where(q[..., :1] < 0, -q, q)


def test_quaternion_matrix_round_trip_matches_scipy(quat, rotations):
    wxyz = rotations.as_quat(scalar_first=True)
    assert np.abs(quat.quat_to_matrix(wxyz) - rotations.as_matrix()).max() < 1e-12
    got = quat.matrix_to_quat(rotations.as_matrix())
    assert np.abs(np.abs(np.sum(got * wxyz, axis=-1)) - 1).max() < 1e-12
    assert np.all(got[:, 0] >= 0)


def test_hamilton_product_composes_like_matrices(quat, rotations):
    a, b = rotations[:100], rotations[100:200]
    product = quat.quat_multiply(a.as_quat(scalar_first=True), b.as_quat(scalar_first=True))
    assert np.abs(quat.quat_to_matrix(product) - (a * b).as_matrix()).max() < 1e-12


def test_slerp_matches_scipy(quat, rotations):
    q0, q1 = rotations[:50], rotations[50:100]
    for t in (0.0, 0.3, 0.5, 1.0):
        got = quat.slerp(q0.as_quat(scalar_first=True), q1.as_quat(scalar_first=True), np.full(50, t))
        want = [Slerp([0, 1], Rotation.concatenate([q0[i], q1[i]]))(t).as_quat(scalar_first=True) for i in range(50)]
        assert np.abs(np.abs(np.sum(got * np.array(want), axis=-1)) - 1).max() < 1e-10


def test_swing_takes_u_to_v_without_twist(quat):
    rng = np.random.default_rng(0)
    u = rng.normal(size=(100, 3))
    v = rng.normal(size=(100, 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    m = quat.swing_matrix(u, v)
    assert np.abs(np.einsum("nij,nj->ni", m, u) - v).max() < 1e-12
    axis = Rotation.from_matrix(m).as_rotvec()
    assert np.abs(np.einsum("ni,ni->n", axis, u)).max() < 1e-9  # rotation axis is perpendicular to u
    opposite = quat.swing_matrix(np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, -1.0]))
    assert opposite @ np.array([0.0, 0.0, 1.0]) == pytest.approx([0.0, 0.0, -1.0])


def test_continuity_removes_sign_flips_only(quat, rotations):
    q = rotations[:100].as_quat(scalar_first=True)
    signs = np.where(np.arange(100) % 3 == 0, -1.0, 1.0)[:, None]
    smooth = quat.make_continuous(q * signs, axis=0)
    assert np.all(np.sum(smooth[1:] * smooth[:-1], axis=-1) >= 0)
    assert np.abs(np.abs(smooth) - np.abs(q)).max() == 0
