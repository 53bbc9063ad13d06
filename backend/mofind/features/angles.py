"""Joint positions -> the 41 official joint-angle columns (geometric inverse kinematics).

A clean re-implementation of the MotionColBert preprocessing, vectorised over frames. Angles follow
ISB/OpenSim-style conventions: a pelvis ("body") frame is built from the hips, each joint angle is
read off a segment vector expressed in its parent frame, and child frames are obtained by turning
the parent frame through the angles just measured.

Fidelity. The official numbers were made from float32 joints with numpy 1.26 / scipy 1.11, so
several steps run in float32 and are reproduced here in float32 on purpose (vector normalisation,
``arccos`` of float32 cosines, the first turn of each frame chain, which numpy 1.x computed in float32
through value-based casting), and the pelvis matrix, which is not orthonormal, is turned into a
quaternion with Markley's method on the raw matrix as scipy <= 1.14 did (newer scipy orthogonalises
first, which moves the pelvis columns by up to 0.066 degrees).
Measured against the reference arrays (4 clips, 740 frames, numpy 2.4 / scipy 1.17): positions,
knee/ankle/elbow, hip flexion/adduction and lumbar flexion/bending are bit-identical; the pelvis Euler
angles are within 3e-14 degrees and the float64 chains (rotations, arms, neck) within 3e-11 degrees.
The tests assert the 1e-4 degree tolerance on every column.

Degenerate geometry (zero-length segments, a limb exactly along a projection normal) yields finite
values (the geometric limit, or 0 when a direction is undefined) where upstream gives NaN or 0;
such frames do not occur in real captures. Non-finite input raises ``AngleInputError``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

F32 = np.float32
F64 = np.float64

# SMPL-22 joint indices (HumanML3D order).
PELVIS, L_HIP, R_HIP = 0, 1, 2
L_KNEE, R_KNEE = 4, 5
L_ANKLE, R_ANKLE = 7, 8
L_FOOT, R_FOOT = 10, 11
NECK, HEAD = 12, 15
L_SHOULDER, R_SHOULDER = 16, 17
L_ELBOW, R_ELBOW = 18, 19
L_WRIST, R_WRIST = 20, 21

# Below this length a direction is treated as undefined (the official threshold).
_TINY = 1e-8

# Frame axes, as column indices of a (T, 3, 3) column-frame: x forward, y up, z across (to the right).
X_FWD, Y_UP, Z_ACROSS = 0, 1, 2


class AngleInputError(ValueError):
    """Joint positions that cannot be turned into angles (bad shape, NaN or inf)."""


# --------------------------------------------------------------------------------------------
# small vectorised geometry helpers
# --------------------------------------------------------------------------------------------

def _normalized(v: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis in v's own dtype; zero vectors stay zero (no NaN)."""
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.divide(v, length, out=np.zeros_like(v), where=length > 0)


def _in_frame(rows: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Coordinates of v in a frame whose axes are the (already normalised) rows of ``rows``."""
    return np.einsum("nij,nj->ni", rows, v)


def _unit_rows(frame_cols: np.ndarray) -> np.ndarray:
    """Row-stacked, re-normalised axes of a column-frame (the official per-call re-normalisation)."""
    return _normalized(np.swapaxes(frame_cols, 1, 2))


def _dot_length(v: np.ndarray) -> np.ndarray:
    """Per-row Euclidean length computed like BLAS ``?dot`` on one short vector.

    The official code normalises one frame's vector at a time with ``np.linalg.norm`` on a 1-D
    array, which calls BLAS: products in the vector's dtype, summed in float64, rounded back. Doing
    the same here makes the float32 body-frame angles bit-identical instead of ~1e-5 degrees off.
    """
    squares = (v * v).astype(F64)
    return np.sqrt(squares.sum(axis=1).astype(v.dtype))


def _sagittal_deg(local: np.ndarray, from_down: bool) -> np.ndarray:
    """Angle (degrees) of a vector's projection on the frame's x-y plane, towards +x (forward).

    Measured from -y (a limb hanging down) when ``from_down``, else from +y (the spine standing up).
    0 where the projection vanishes. Computed in the vector's dtype, with the official
    normalise-then-project order (float32 for body-frame angles).
    """
    length = _dot_length(local)[:, None]
    unit = np.divide(local, length, out=np.zeros_like(local), where=length > 0)
    xy = unit[:, :2].copy()
    xy_len = _dot_length(xy)
    ok = xy_len > _TINY
    xy = np.divide(xy, xy_len[:, None], out=np.zeros_like(xy), where=ok[:, None])
    up = -xy[:, 1] if from_down else xy[:, 1]
    return np.where(ok, np.degrees(np.arctan2(xy[:, 0], up)).astype(F64), 0.0)


def _elevation_deg(local: np.ndarray, normal: int) -> np.ndarray:
    """Signed angle (degrees) between a vector and the coordinate plane orthogonal to axis ``normal``.

    Positive on the side of +normal. Computed as the arccos of the cosine between the vector and its
    in-plane projection, in the vector's dtype: for float32 input this keeps the official float32
    quantisation of small angles (``arccos`` of a float32 cosine near 1). A vector exactly along the
    normal gets the geometric limit +-90 (upstream: NaN or 0), a zero vector gets 0.
    """
    proj = local.copy()
    proj[:, normal] = 0
    dot = np.sum(local * proj, axis=1)
    len_v = np.linalg.norm(local, axis=1)
    len_p = np.linalg.norm(proj, axis=1)
    ok = (len_p > _TINY) & (len_v > _TINY)
    cos = np.clip(np.divide(dot, len_v * len_p, out=np.zeros_like(dot), where=ok), -1.0, 1.0)
    side = np.sign(local[:, normal])
    return np.degrees(np.arccos(cos)).astype(F64) * side


def _included_angle_deg(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Angle (degrees) between segments a->b and b->c: 0 when they are collinear (straight limb).

    Float32 like upstream; a zero-length segment gives 90 (cosine 0) instead of NaN.
    """
    u = b - a
    w = c - b
    dot = np.einsum("ij,ij->i", u, w)
    den = np.clip(np.linalg.norm(u, axis=1) * np.linalg.norm(w, axis=1), 1e-8, None)
    return np.degrees(np.arccos(np.clip(dot / den, -1.0, 1.0)))


def _axis_angle_matrices(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrices (T,3,3) float64 for rotation vectors (T,3); the angle is the vector's length."""
    theta = np.linalg.norm(rotvec, axis=1)
    axis = np.divide(rotvec, theta[:, None], out=np.zeros_like(rotvec), where=theta[:, None] > 0)
    c = np.cos(theta)[:, None, None]
    s = np.sin(theta)[:, None, None]
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=1).reshape(-1, 3, 3)
    outer = axis[:, :, None] * axis[:, None, :]
    return c * np.eye(3) + s * skew + (1.0 - c) * outer


def _turn(frame_cols: np.ndarray, angle_deg: np.ndarray, about: int) -> np.ndarray:
    """Rotate a column-frame by ``angle_deg`` about its own axis ``about``; returns float64.

    The rotation vector is angle * axis with the axis as stored (not re-normalised), so a non-unit
    axis scales the turn, exactly as upstream. When the frame is float32 (the raw body frame) the
    product is taken in float32, reproducing numpy 1.x value-based casting of the official run.
    """
    axis = frame_cols[:, :, about]
    rotvec = np.radians(angle_deg).astype(axis.dtype)[:, None] * axis
    return _axis_angle_matrices(rotvec.astype(F64)) @ frame_cols.astype(F64)


def _local(frame_cols: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Coordinates of v against the (un-normalised) axes of a column-frame: frame^T v, float64."""
    return np.einsum("nji,nj->ni", frame_cols, v.astype(F64))


# --------------------------------------------------------------------------------------------
# anatomical blocks
# --------------------------------------------------------------------------------------------

def _to_opensim_axes(joints: np.ndarray) -> np.ndarray:
    """HumanML3D (x left, y up, z forward) -> official axes: x forward, y up, z right (float32)."""
    out = joints[:, :22, [2, 1, 0]].astype(F32)
    out[:, :, 2] *= -1
    return out


def _body_frame(p: np.ndarray) -> np.ndarray:
    """Pelvis frame as a float32 column-frame (T,3,3): columns forward, up, across.

    across = left hip -> right hip; up = hip midpoint -> pelvis joint, made orthogonal to across but
    deliberately NOT re-normalised (official quirk: its length is ~0.998); forward = up x across.
    """
    l_hip, r_hip = p[:, L_HIP], p[:, R_HIP]
    across = _normalized(r_hip - l_hip)
    up = _normalized(p[:, PELVIS] - (r_hip + l_hip) / 2)
    up = up - np.sum(up * across, axis=-1, keepdims=True) * across
    forward = _normalized(np.cross(up, across))
    return np.stack([forward, up, across], axis=2)


def _pelvis_euler_deg(body_cols: np.ndarray) -> np.ndarray:
    """Pelvis tilt, list, rotation: intrinsic Z-X-Y Euler angles of the body frame (degrees).

    The frame's column matrix is converted to a quaternion with Markley's method applied to the raw,
    non-orthonormal matrix (scipy <= 1.14 behaviour, which produced the official numbers), then to
    Euler angles. Columns: [Z = tilt (forward/backward lean), X = list (sideways), Y = rotation].
    """
    m = body_cols.astype(F64)
    diag = np.stack([m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=1)
    trace = diag[:, 0] + diag[:, 1] + diag[:, 2]
    pick = np.argmax(np.column_stack([diag, trace]), axis=1)
    quat = np.empty((len(m), 4))
    for i in range(3):  # the three "largest diagonal" branches, each vectorised
        j, k = (i + 1) % 3, (i + 2) % 3
        sel = pick == i
        ms = m[sel]
        quat[sel, i] = 1 - trace[sel] + 2 * ms[:, i, i]
        quat[sel, j] = ms[:, j, i] + ms[:, i, j]
        quat[sel, k] = ms[:, k, i] + ms[:, i, k]
        quat[sel, 3] = ms[:, k, j] - ms[:, j, k]
    sel = pick == 3
    ms = m[sel]
    quat[sel, 0] = ms[:, 2, 1] - ms[:, 1, 2]
    quat[sel, 1] = ms[:, 0, 2] - ms[:, 2, 0]
    quat[sel, 2] = ms[:, 1, 0] - ms[:, 0, 1]
    quat[sel, 3] = 1 + trace[sel]
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)  # never zero: the picked component is >= 1
    return Rotation.from_quat(quat).as_euler("ZXY", degrees=True)


def _hip(p, body_rows, body_cols, hip, knee, ankle):
    """Hip flexion, adduction and axial rotation of one leg, as measured (before side signs).

    flexion: angle of the thigh in the body's sagittal (forward/up) plane from straight down, positive
    forward; adduction: elevation of the thigh out of that plane, positive to the right; rotation:
    elevation of the shank out of the sagittal plane of the thigh frame (body frame turned by the
    flexion, then by the adduction), i.e. how the knee's hinge plane is twisted.
    """
    thigh = _in_frame(body_rows, p[:, knee] - p[:, hip])
    flexion = _sagittal_deg(thigh, from_down=True)
    adduction = _elevation_deg(thigh, Z_ACROSS)
    thigh_frame = _turn(_turn(body_cols, flexion, Z_ACROSS), -adduction, X_FWD)
    shank = _local(thigh_frame, p[:, ankle] - p[:, knee])
    rotation = _elevation_deg(shank, Z_ACROSS)
    return flexion, adduction, rotation


def _trunk(p, body_rows, body_cols):
    """Lumbar flexion/bending/rotation and the thorax frame the arms and neck hang from.

    flexion: lean of the pelvis->neck vector in the sagittal plane from vertical (positive forward);
    bending: its elevation out of the sagittal plane (positive to the right); rotation: the twist of
    the shoulder line, the elevation of neck->right-shoulder out of the thorax's frontal plane.
    The thorax frame is the body frame turned by -flexion (about across), bending (about the new
    forward) and rotation (about the new up).
    """
    spine = _in_frame(body_rows, p[:, NECK] - p[:, PELVIS])
    flexion = _sagittal_deg(spine, from_down=False)
    bending = _elevation_deg(spine, Z_ACROSS)
    bent = _turn(_turn(body_cols, -flexion, Z_ACROSS), bending, X_FWD)
    shoulder_line = _local(bent, p[:, R_SHOULDER] - p[:, NECK])
    rotation = _elevation_deg(shoulder_line, X_FWD)
    thorax = _turn(bent, rotation, Y_UP)
    return flexion, bending, rotation, thorax


def _shoulder(p, thorax_rows, thorax_cols, shoulder, elbow, wrist):
    """Shoulder flexion, adduction and axial rotation of one arm in the thorax frame (before signs).

    flexion: upper-arm angle in the thorax sagittal plane from hanging straight down (positive
    forward); adduction: its elevation out of that plane (positive to the right); rotation: the
    forearm's elevation out of the sagittal plane of the upper-arm frame (humeral twist).
    """
    upper = _in_frame(thorax_rows, p[:, elbow] - p[:, shoulder])
    flexion = _sagittal_deg(upper, from_down=True)
    adduction = _elevation_deg(upper, Z_ACROSS)
    arm_frame = _turn(_turn(thorax_cols, flexion, Z_ACROSS), -adduction, X_FWD)
    forearm = _local(arm_frame, p[:, wrist] - p[:, elbow])
    rotation = _elevation_deg(forearm, Z_ACROSS)
    return flexion, adduction, rotation


def _neck(p, thorax_rows):
    """Neck flexion (forward lean of neck->head in the thorax sagittal plane) and side bend."""
    head = _in_frame(thorax_rows, p[:, HEAD] - p[:, NECK])
    return _sagittal_deg(head, from_down=False), _elevation_deg(head, Z_ACROSS)


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------

def _validated(joints) -> np.ndarray:
    arr = np.asarray(joints)
    if arr.ndim != 3 or arr.shape[1] < 22 or arr.shape[2] != 3:
        raise AngleInputError(f"joint positions must have shape (T, 22, 3), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise AngleInputError(f"joint positions must be numeric, got dtype {arr.dtype}")
    finite = np.isfinite(arr).all(axis=(1, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise AngleInputError(
            f"joint positions contain NaN or inf in {bad.size} frame(s), first at frame {bad[0]}"
        )
    return arr


def joint_angles41(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) SMPL-order joint positions (HumanML3D convention, metres) -> (T, 41) float64.

    Column layout: ``parts.COLUMNS41``. Input is processed as float32, like the official pipeline
    (float64 input is rounded to float32 first). Reproduces the official output to <= 1e-4 degrees.
    """
    p = _to_opensim_axes(_validated(joints))
    n = len(p)
    if n == 0:
        return np.zeros((0, 41))

    body_cols = _body_frame(p)
    body_rows = _unit_rows(body_cols)
    pelvis = _pelvis_euler_deg(body_cols)

    r_hip = _hip(p, body_rows, body_cols, R_HIP, R_KNEE, R_ANKLE)
    l_hip = _hip(p, body_rows, body_cols, L_HIP, L_KNEE, L_ANKLE)
    lumbar_flex, lumbar_bend, lumbar_rot, thorax_cols = _trunk(p, body_rows, body_cols)
    thorax_rows = _unit_rows(thorax_cols)
    r_arm = _shoulder(p, thorax_rows, thorax_cols, R_SHOULDER, R_ELBOW, R_WRIST)
    l_arm = _shoulder(p, thorax_rows, thorax_cols, L_SHOULDER, L_ELBOW, L_WRIST)
    neck_flex, neck_add = _neck(p, thorax_rows)

    columns = [
        pelvis[:, 0], pelvis[:, 1], pelvis[:, 2],
        *p[:, PELVIS].T, *p[:, R_HIP].T, *p[:, L_HIP].T, *p[:, R_SHOULDER].T, *p[:, L_SHOULDER].T,
        # right leg: adduction and the left leg's rotation are mirrored so both sides share a sign
        r_hip[0], -r_hip[1], r_hip[2],
        _included_angle_deg(p[:, R_HIP], p[:, R_KNEE], p[:, R_ANKLE]),
        _included_angle_deg(p[:, R_KNEE], p[:, R_ANKLE], p[:, R_FOOT]) - 90,
        l_hip[0], l_hip[1], -l_hip[2],
        _included_angle_deg(p[:, L_HIP], p[:, L_KNEE], p[:, L_ANKLE]),
        _included_angle_deg(p[:, L_KNEE], p[:, L_ANKLE], p[:, L_FOOT]) - 90,
        -lumbar_flex, lumbar_bend, lumbar_rot,
        r_arm[0], -r_arm[1], -r_arm[2],
        l_arm[0], l_arm[1], -l_arm[2],
        _included_angle_deg(p[:, R_SHOULDER], p[:, R_ELBOW], p[:, R_WRIST]),
        _included_angle_deg(p[:, L_SHOULDER], p[:, L_ELBOW], p[:, L_WRIST]),
        neck_flex, neck_add,
    ]
    return np.column_stack(columns).astype(F64)
