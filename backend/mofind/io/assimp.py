"""FBX and glTF/GLB takes through the Open Asset Import Library (assimp), via the `impasse` bindings.

Why assimp (Debian's `libassimp5` 5.2.5 + `impasse` 5.4.2, cffi, pure Python): we tried every PyPI candidate on
files written by Blender 4.2's own FBX and glTF exporters (tests/fixtures/blender_export.py):
  * `ufbx` 0.0.5 (the only ufbx binding with a wheel): segfaults on plain node access (`[n.name for n in
    scene.nodes]`, `node.parent`, `node.bone`) — a reference-counting bug in its generated code; unusable in a server.
  * `pufbx` 0.1.0: sdist only (a 2-minute Cython/C build on each machine), "alpha, ~35 % of ufbx", and
    `scene.settings` (frame rate, units, axes) raises NotImplementedError.
  * `pyassimp` 5.2.5 with the same libassimp: fails on any file holding a skinned mesh (ctypes struct mismatch,
    "NULL pointer access").
  * `impasse` + libassimp: reads both formats (one code path for FBX stacks and glTF animations), world joint
    positions agree with Blender's own pose to 1e-6 m (FBX, cm units, Mixamo names) and 2e-6 m (GLB); loading
    takes 3-90 ms a file. Keys are read as numpy views of assimp's arrays (per-key Python access cost 1.5 s
    on a 2,752-frame CMU take; the views take milliseconds).
  * Blender's importers (bpy wheel) would also work but cost ~1 s of start-up per process and 300 MB.
`pygltflib` was not needed once assimp read glTF.

What a take is: one assimp animation (FBX animation stack, glTF animation). Every scene node's local matrix
is sampled at the take's frame times (keys interpolated linearly — exporters bake a key per frame, so samples
fall on keys) and composed to world matrices, so pre-rotations, pivots ($AssimpFbx$ helper nodes), armature
objects and unit scale factors need no special handling. Joints are the nodes that skin a mesh or that a take
animates, minus meshes, cameras, lights and FBX Null objects (Blender's "Armature"); helper nodes fold into
their bones. Units: FBX `UnitScaleFactor` (centimetres = 1), glTF metres. Axes: the FBX axis metadata
(Maya/Blender Y-up, 3ds Max Z-up) is turned into Y-up, +Z front; glTF is Y-up by specification.
Frame rate: an FBX take is sampled at the file's frame rate (`FrameRate`/`CustomFrameRate`); glTF stores
no frame rate, so its keys' own spacing is used when it is regular, else 30 fps.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .bvh import snap_fps
from .errors import MotionFormatError
from .scene import GLTF_DEFAULT_FPS, MAX_FRAMES, MAX_JOINTS, SceneTake, sample_times, trs_matrices

SCENE_SUFFIXES = (".fbx", ".glb", ".gltf")
MAX_FILE_BYTES = 2 << 30  # 2 GiB: larger "motion files" are damaged or not motion files
HELPER = "$AssimpFbx$"
# FBX FrameRate enum (FbxTime::EMode) -> frames per second; 14 = custom (CustomFrameRate)
FBX_TIME_MODES = {1: 120.0, 2: 100.0, 3: 60.0, 4: 50.0, 5: 48.0, 6: 30.0, 7: 30.0, 8: 29.97, 9: 29.97, 10: 25.0,
                  11: 24.0, 12: 1000.0, 13: 23.976, 15: 96.0, 16: 72.0, 17: 59.94, 18: 119.88}
_HELPER_RE = re.compile(r"_\$AssimpFbx\$_.*$")


class SceneFileError(MotionFormatError):
    """An FBX / glTF file that cannot be read, or holds no skeleton or no animation."""


def read_scene_takes(path: str | Path) -> list[SceneTake]:
    """Every take of an FBX / glTF / GLB file (see the module docstring). Raises `SceneFileError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SceneFileError(f"cannot read file: {exc.strerror or exc}", path) from exc
    if size == 0:
        raise SceneFileError("empty file", path)
    if size > MAX_FILE_BYTES:
        raise SceneFileError(f"{size / 2**30:.1f} GiB is too large for a motion file (limit "
                             f"{MAX_FILE_BYTES / 2**30:.0f} GiB)", path)
    impasse = _import_impasse(path)
    from impasse.errors import AssimpError

    try:
        scene = impasse.load(str(path), processing=0)
    except (AssimpError, Exception) as exc:  # noqa: BLE001 - AssimpError is a BaseException; cffi errors too
        raise SceneFileError(f"not a readable {path.suffix.lstrip('.').upper()} file ({_assimp_error() or exc})",
                             path) from None
    return _takes(scene, path)


def _import_impasse(path: Path):
    hint = "FBX/glTF support needs the assimp library (Debian/Ubuntu: apt-get install libassimp5; pip install impasse)"
    try:
        import impasse
    except (ImportError, OSError) as exc:
        raise SceneFileError(f"{hint}: {exc}", path) from None
    except BaseException as exc:  # impasse raises AssimpError, a BaseException, when libassimp is missing
        if type(exc).__name__ != "AssimpError":
            raise
        raise SceneFileError(f"{hint}: {exc}", path) from None
    return impasse


def _assimp_error() -> str:
    """assimp's last error message (its C API keeps it in a global), '' when unavailable."""
    try:
        import ctypes
        import ctypes.util

        lib = ctypes.CDLL(ctypes.util.find_library("assimp") or "libassimp.so.5")  # the handle impasse loaded
        lib.aiGetErrorString.restype = ctypes.c_char_p
        return (lib.aiGetErrorString() or b"").decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001 - a nicer message is optional
        return ""


def _takes(scene, path: Path) -> list[SceneTake]:
    nodes, parents, names = _flatten(scene.root_node)
    if len(scene.animations) == 0:
        raise SceneFileError("the file holds no animation (a model or a pose only)", path)
    metadata = _metadata(scene)
    is_fbx = path.suffix.lower() == ".fbx"
    metres = float(metadata.get("UnitScaleFactor", 100.0)) / 100.0 if is_fbx else 1.0
    axes = _axes_to_y_up(metadata, path) if is_fbx else np.eye(3)
    static = np.stack([np.asarray(node.transformation, dtype=np.float64) for node in nodes])
    index = {name: i for i, name in enumerate(names)}
    joints = _joint_nodes(scene, nodes, names, parents, metadata_by_node=[_metadata(n) for n in nodes])
    if not joints:
        raise SceneFileError("no skeleton: no node is a bone or animated", path)
    if len(joints) > MAX_JOINTS:
        raise SceneFileError(f"{len(joints)} joints; at most {MAX_JOINTS} are read", path)
    joint_parents = _joint_parents(joints, parents)
    file_fps = _fbx_fps(metadata) if is_fbx else None
    takes = []
    for number, animation in enumerate(scene.animations):
        channels = _channels(animation, index)
        if not channels:
            continue
        key_step = None if file_fps else _key_step(channels)
        fps = file_fps or (1.0 / key_step if key_step else GLTF_DEFAULT_FPS)
        start = min(float(c[1][0, 0]) for c in channels.values())
        end = max(float(c[1][-1, 0]) for c in channels.values())
        if (end - start) * fps > MAX_FRAMES:
            raise SceneFileError(f"take {animation.name!r} lasts {end - start:.0f} s: more than {MAX_FRAMES} "
                                 "frames (damaged time values?)", path)
        times = sample_times(start, end, fps)
        world = _world_matrices(static, parents, channels, times, needed=joints)
        world = world[:, joints]
        world[..., :3, :] = np.einsum("ij,tnjk->tnik", axes, world[..., :3, :])
        world[..., :3, 3] *= metres
        if not np.all(np.isfinite(world)):
            raise SceneFileError(f"take {animation.name!r} has non-finite transforms", path)
        takes.append(SceneTake(name=str(animation.name) or f"take{number}", names=[names[j] for j in joints],
                               parents=joint_parents, world=world, fps=snap_fps(float(fps))))
    if not takes:
        raise SceneFileError("no animation in the file moves a node", path)
    _unique_names(takes)
    return takes


def _flatten(root):
    nodes, parents, names = [], [], []
    stack = [(root, -1)]
    while stack:
        node, parent = stack.pop()
        nodes.append(node)
        parents.append(parent)
        names.append(str(node.name))
        me = len(nodes) - 1
        stack.extend((child, me) for child in reversed(list(node.children)))
    return nodes, np.asarray(parents, dtype=np.int64), names


def _metadata(obj) -> dict:
    try:
        meta = obj.metadata
        return dict(meta) if meta is not None else {}
    except Exception:  # noqa: BLE001 - absent or unreadable metadata is not an error
        return {}


def _axes_to_y_up(metadata: dict, path: Path) -> np.ndarray:
    """3x3 matrix taking the file's (right, up, front) axes to (+X, +Y, +Z)."""
    try:
        right = int(metadata.get("CoordAxis", 0)), int(metadata.get("CoordAxisSign", 1))
        up = int(metadata.get("UpAxis", 1)), int(metadata.get("UpAxisSign", 1))
        front = int(metadata.get("FrontAxis", 2)), int(metadata.get("FrontAxisSign", 1))
    except (TypeError, ValueError):
        return np.eye(3)
    rows = []
    for axis, sign in (right, up, front):
        if axis not in (0, 1, 2):
            return np.eye(3)
        rows.append(np.eye(3)[axis] * (1.0 if sign >= 0 else -1.0))
    matrix = np.stack(rows)
    if abs(abs(np.linalg.det(matrix)) - 1.0) > 1e-6:
        return np.eye(3)
    if np.linalg.det(matrix) < 0:
        raise SceneFileError("left-handed axis system: not supported (re-export right-handed)", path)
    return matrix


def _fbx_fps(metadata: dict) -> float | None:
    try:
        mode = int(metadata.get("FrameRate", -1))
    except (TypeError, ValueError):
        return None
    if mode == 14:
        custom = float(metadata.get("CustomFrameRate", 0.0) or 0.0)
        return custom if 0.0 < custom <= 1000.0 else None
    return FBX_TIME_MODES.get(mode)


def _joint_nodes(scene, nodes, names, parents, metadata_by_node) -> list[int]:
    """Indices (parents first) of the skeleton's nodes: bones of a skin or animated nodes (see docstring)."""
    wanted: set[str] = set()
    for mesh in scene.meshes:
        wanted.update(str(bone.name) for bone in mesh.bones)
    for animation in scene.animations:
        wanted.update(_HELPER_RE.sub("", str(channel.node_name)) for channel in animation.channels)
    excluded = {str(c.name) for c in scene.cameras} | {str(light.name) for light in scene.lights}
    joints = []
    for i, node in enumerate(nodes):
        name = names[i]
        if (name not in wanted or name in excluded or HELPER in name or len(node.meshes) > 0
                or metadata_by_node[i].get("IsNull")):
            continue
        joints.append(i)
    return joints


def _joint_parents(joints: list[int], parents: np.ndarray) -> np.ndarray:
    position = {node: k for k, node in enumerate(joints)}
    out = np.full(len(joints), -1, dtype=np.int64)
    for k, node in enumerate(joints):
        parent = int(parents[node])
        while parent >= 0 and parent not in position:
            parent = int(parents[parent])
        out[k] = position.get(parent, -1)
    return out


def _channels(animation, index: dict[str, int]) -> dict[int, tuple]:
    """node index -> (position keys (K, 4) t,x,y,z; rotation keys (K, 5) t,w,x,y,z; scale keys (K, 4)), seconds."""
    from impasse.structs import ffi

    tps = float(animation.ticks_per_second or 0.0) or 25.0  # assimp's documented default
    out = {}
    for channel in animation.channels:
        node = index.get(str(channel.node_name))
        if node is None:
            continue
        struct = channel.struct
        keys = (_key_array(ffi, struct.mPositionKeys, struct.mNumPositionKeys, "struct aiVectorKey", 3),
                _key_array(ffi, struct.mRotationKeys, struct.mNumRotationKeys, "struct aiQuatKey", 4),
                _key_array(ffi, struct.mScalingKeys, struct.mNumScalingKeys, "struct aiVectorKey", 3))
        if any(len(k) == 0 for k in keys):
            continue
        for k in keys:
            k[:, 0] /= tps
            if np.any(np.diff(k[:, 0]) < 0) or not np.all(np.isfinite(k)):
                raise SceneFileError(f"channel {channel.node_name!s} has unordered or non-finite keys")
        out[node] = keys
    return out


def _key_array(ffi, pointer, count: int, ctype: str, width: int) -> np.ndarray:
    """assimp key structs (double time; float values[width]) -> (count, 1 + width) float64 via one buffer copy."""
    if count == 0 or pointer == ffi.NULL:
        return np.zeros((0, 1 + width))
    size = ffi.sizeof(ctype)
    dtype = np.dtype({"names": ["t", "v"], "formats": ["<f8", ("<f4", (width,))],
                      "offsets": [ffi.offsetof(ctype, "mTime"), ffi.offsetof(ctype, "mValue")], "itemsize": size})
    raw = np.frombuffer(ffi.buffer(pointer, size * count), dtype=dtype)
    return np.concatenate([raw["t"][:, None], raw["v"].astype(np.float64)], axis=1)


def _key_step(channels: dict[int, tuple]) -> float | None:
    """Seconds between evenly spaced keys (glTF has no frame rate; samples then fall on the keys), or None."""
    times = max((keys[1][:, 0] for keys in channels.values()), key=len)
    if len(times) < 3:
        return None
    steps = np.diff(times)
    step = float(np.median(steps))
    if step <= 0 or np.max(np.abs(steps - step)) > 0.01 * step:
        return None
    return step


def _world_matrices(static: np.ndarray, parents: np.ndarray, channels: dict[int, tuple], times: np.ndarray,
                    needed: list[int]) -> np.ndarray:
    """(T, N, 4, 4) world matrices of the nodes on the paths from the root to `needed` (others left zero)."""
    num_nodes = len(static)
    on_path = np.zeros(num_nodes, bool)
    for node in needed:
        while node >= 0 and not on_path[node]:
            on_path[node] = True
            node = int(parents[node])
    world = np.zeros((len(times), num_nodes, 4, 4))
    for node in range(num_nodes):  # parents precede children (depth-first order)
        if not on_path[node]:
            continue
        if node in channels:
            position, rotation, scale = channels[node]
            local = trs_matrices(_lerp(times, position), _quat_lerp(times, rotation)[:, [1, 2, 3, 0]],
                                 _lerp(times, scale))
        else:
            local = np.broadcast_to(static[node], (len(times), 4, 4))
        parent = int(parents[node])
        world[:, node] = local if parent < 0 else world[:, parent] @ local
    return world


def _lerp(times: np.ndarray, keys: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(times, keys[:, 0], keys[:, c]) for c in range(1, keys.shape[1])], axis=-1)


def _quat_lerp(times: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Normalised linear interpolation of w,x,y,z keys (exact at the keys), shortest way round."""
    key_t, quats = keys[:, 0], keys[:, 1:].copy()
    for k in range(1, len(quats)):  # keep consecutive keys in one hemisphere
        if np.dot(quats[k], quats[k - 1]) < 0:
            quats[k] = -quats[k]
    if len(key_t) == 1:
        return np.broadcast_to(quats[0], (len(times), 4)).copy()
    right = np.clip(np.searchsorted(key_t, times, side="right"), 1, len(key_t) - 1)
    left = right - 1
    span = np.maximum(key_t[right] - key_t[left], 1e-12)
    w = np.clip((times - key_t[left]) / span, 0.0, 1.0)[:, None]
    out = quats[left] * (1.0 - w) + quats[right] * w
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def _unique_names(takes: list[SceneTake]) -> None:
    seen: dict[str, int] = {}
    for take in takes:
        count = seen.get(take.name, 0)
        seen[take.name] = count + 1
        if count:
            take.name = f"{take.name}#{count + 1}"
