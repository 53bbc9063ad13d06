"""FBX and glTF/GLB ingest, checked on files written by Blender's own exporters (bpy wheel, in a subprocess).

The synthetic rigs (always run) and the shared BVH samples (when ../shared is present) are imported into Blender
with its BVH importer and exported to FBX (centimetres, like Mixamo) and GLB; Blender also records each bone's
world position per frame. MoFind must read back those positions (<= 1 mm), the frame count, the frame rate and
every take, ignore the skinned mesh, camera and empty, and report broken files per file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fixtures.synthetic import CMU_UNIT, write_action_bvh
from mofind.io import MotionIOError, load_motion, load_motions
from mofind.io.bvh import forward_kinematics_arrays
from mofind.io.rotations import quat_wxyz_to_rotation

REPO = Path(__file__).resolve().parents[2]
EXPORTER = REPO / "tests" / "fixtures" / "blender_export.py"
MM = 1e-3


def blender_python() -> Path:
    for name in (".venv-bpy42", ".venv-bpy50"):
        path = REPO / name / "bin" / "python"
        if path.exists():
            return path
    pytest.skip("no bpy wheel venv (.venv-bpy42/.venv-bpy50): run `make venv-bpy42` for Blender's exporters")


def run_exporter(job: dict, folder: Path) -> None:
    job_file = folder / "job.json"
    job_file.write_text(json.dumps(job))
    result = subprocess.run([str(blender_python()), str(EXPORTER), str(job_file)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exported")
    walk = write_action_bvh(folder / "walk.bvh", "bandai", "walk", seconds=2.0)
    wave = write_action_bvh(folder / "wave.bvh", "bandai", "wave_left", seconds=1.5, seed=3)
    cmu = write_action_bvh(folder / "cmu_walk.bvh", "cmu", "walk", seconds=1.0)
    run_exporter({"files": [
        {"takes": [str(walk), str(wave)], "names": ["Walk", "Wave"], "scale": 0.01, "mixamo": True, "mesh": True,
         "extras": True, "out": [str(folder / "rig.fbx"), str(folder / "rig.glb")], "truth": str(folder / "rig.npz")},
        {"takes": [str(cmu)], "names": ["Walk"], "scale": CMU_UNIT,
         "out": [str(folder / "cmu.fbx"), str(folder / "cmu.glb")]},
        {"empty_scene": "static", "out": [str(folder / "static.fbx"), str(folder / "static.glb")]},
        {"empty_scene": "camera", "out": [str(folder / "camera.fbx"), str(folder / "camera.glb")]},
    ]}, folder)
    return folder


def world_positions(motion) -> np.ndarray:
    """(T, J, 3) FK of the Motion's source fields: what get_motion hands to Apply."""
    quats = motion.local_rotations
    mats = quat_wxyz_to_rotation(quats.reshape(-1, 4)).as_matrix().reshape(quats.shape[:2] + (3, 3))
    translations = motion.joint_translations
    if translations is None:
        translations = np.broadcast_to(motion.skeleton.offsets, quats.shape[:2] + (3,)).copy()
        translations[:, 0] = motion.root_translation
    return forward_kinematics_arrays(motion.skeleton.parents, mats, translations) * motion.mapping["unit_scale"]


def blender_to_y_up(points: np.ndarray) -> np.ndarray:
    return points[..., [0, 2, 1]] * np.array([1.0, 1.0, -1.0])


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".fbx", ".glb"])
def test_every_take_reads_back_blenders_world_positions(exported, suffix):
    truth = np.load(exported / "rig.npz")
    names = [str(n) for n in truth["names"]]
    motions = load_motions(exported / f"rig{suffix}")
    assert [m.take.split("|")[-1] for m in motions] == ["Walk", "Wave"]  # FBX stacks are "Armature|Walk"
    from mofind.commands.inspect import describe

    assert [t["name"] for t in describe(exported / f"rig{suffix}")["takes"]] == [m.take for m in motions]
    for k, motion in enumerate(motions):
        assert motion.source_fps == 30.0
        expected = blender_to_y_up(truth[f"take{k}"])
        assert motion.frame_range == (0, len(expected))
        assert set(motion.skeleton.names) == set(names)  # no mesh, camera, empty or armature object
        assert "mixamorig:Hips" in motion.skeleton.names
        order = [motion.skeleton.names.index(n) for n in names]
        error = np.abs(world_positions(motion)[:, order] - expected).max()
        assert error <= MM, f"{motion.take}: {error * 1000:.3f} mm"
        again = load_motion(exported / f"rig{suffix}", take=motion.take)
        np.testing.assert_array_equal(again.local_rotations, motion.local_rotations)


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".fbx", ".glb"])
def test_scene_take_gives_the_smpl_joints_of_the_bvh_it_came_from(exported, suffix):
    bvh = load_motion(exported / "cmu_walk.bvh")
    scene = load_motion(exported / f"cmu{suffix}")
    assert scene.source_fps == bvh.source_fps == 120.0
    assert scene.frame_range == bvh.frame_range and scene.num_frames == bvh.num_frames
    assert scene.mapping["preset"] == bvh.mapping["preset"]
    assert np.abs(scene.joints - bvh.joints).max() <= MM


def broken_files(folder: Path, exported: Path) -> dict[str, str]:
    """file name -> words its error must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    data = (exported / "rig.fbx").read_bytes()
    (folder / "truncated.fbx").write_bytes(data[: len(data) * 2 // 5])
    glb = (exported / "rig.glb").read_bytes()
    (folder / "truncated.glb").write_bytes(glb[: len(glb) // 2])
    (folder / "garbage.gltf").write_bytes(b"\x00\x01 not json at all")
    (folder / "empty.fbx").write_bytes(b"")
    with open(folder / "huge.fbx", "wb") as handle:  # sparse: costs no disk
        handle.truncate(3 << 30)
    shutil.copy(exported / "static.glb", folder / "static.glb")
    shutil.copy(exported / "static.fbx", folder / "static.fbx")
    shutil.copy(exported / "camera.fbx", folder / "camera.fbx")
    return {"truncated.fbx": "not a readable FBX", "truncated.glb": "not a readable GLB",
            "garbage.gltf": "not a readable GLTF", "empty.fbx": "empty file", "huge.fbx": "too large",
            "static.glb": "no animation", "static.fbx": "no animation", "camera.fbx": "no skeleton"}


@pytest.mark.slow
def test_malformed_scene_files_raise_errors_naming_the_file(tmp_path, exported):
    for name, words in broken_files(tmp_path / "broken", exported).items():
        path = tmp_path / "broken" / name
        with pytest.raises(MotionIOError) as caught:
            load_motions(path)
        assert str(path) in str(caught.value) and words in str(caught.value), str(caught.value)


@pytest.mark.slow
def test_a_library_of_scene_files_indexes_each_take_and_reports_broken_files(tmp_path, exported):
    from mofind.index.build import build_index
    from mofind.index.encoders import weights_present
    from mofind.index.store import IndexReader, clip_id_for
    from mofind.model.inference import Encoder
    from mofind.server.handlers import Backend

    library = tmp_path / "library"
    broken = broken_files(library / "broken", exported)
    shutil.copy(exported / "rig.fbx", library / "rig.fbx")
    encoder = Encoder.load() if weights_present() else Encoder.random("compact")
    report = build_index([library], tmp_path / "index", encoder, workers=0)
    assert sorted(Path(p).name for p, _ in report.failed) == sorted(broken)
    reader = IndexReader.open(tmp_path / "index")
    records = sorted(reader.clips(), key=lambda r: r.take)
    assert [r.take for r in records] == ["Armature|Walk", "Armature|Wave"] and report.indexed == 2
    assert {r.format for r in records} == {"fbx"}
    assert [r.clip_id for r in records] == [clip_id_for(library / "rig.fbx", r.take) for r in records]
    backend = Backend(tmp_path / "index", encoder)
    try:
        for record in records:
            result, frames = backend.get_motion({"clip_id": record.clip_id})
            motion = load_motion(record.source, take=record.take)
            assert result["take"] == record.take and result["end_frame"] == motion.frame_range[1]
            rotations = np.frombuffer(frames.frames[result["rotations"]["$frame"]], "<f4")
            np.testing.assert_array_equal(rotations.reshape(result["rotations"]["shape"]), motion.local_rotations)
    finally:
        backend.stop()
    moved = library / "Locomotion" / "rig_renamed.fbx"  # a move keeps every take, without re-encoding
    moved.parent.mkdir()
    (library / "rig.fbx").rename(moved)
    report = build_index([library], tmp_path / "index", encoder, workers=0)
    assert report.moved == 1 and report.indexed == 0
    after = IndexReader.open(tmp_path / "index").clips()
    assert sorted((r.source, r.take) for r in after) == [(str(moved), r.take) for r in records]
    assert {r.clip_id for r in after} == {clip_id_for(moved, r.take) for r in records}
    assert {r.text["name"] for r in after} == {"locomotion rig renamed walk", "locomotion rig renamed wave"}
    assert all(set(r.text_vectors) == {"name"} for r in after)


@pytest.mark.slow
@pytest.mark.needs_shared
def test_bvh_samples_round_trip_through_blender_fbx_and_gltf(tmp_path, bvh_samples):
    samples = [p for p in bvh_samples if p.stat().st_size < 3_000_000]
    run_exporter({"files": [{"takes": [str(p)], "names": [p.stem], "mixamo": False,
                             "out": [str(tmp_path / f"{p.stem}.fbx"), str(tmp_path / f"{p.stem}.glb")]}
                            for p in samples]}, tmp_path)
    for sample in samples:
        bvh = load_motion(sample)
        reference = world_positions(bvh)  # metres; Blender imported the BVH's units as metres
        for suffix in (".fbx", ".glb"):
            scene = load_motion(tmp_path / f"{sample.stem}{suffix}")
            assert scene.frame_range == bvh.frame_range, (sample.name, suffix)
            order = [scene.skeleton.names.index(n) for n in bvh.skeleton.names]
            scene_world = world_positions(scene) / scene.mapping["unit_scale"] * bvh.mapping["unit_scale"]
            error = np.abs(scene_world[:, order] - reference).max()
            assert error <= MM, f"{sample.name} {suffix}: {error * 1000:.3f} mm"
            assert np.abs(scene.joints - bvh.joints).max() <= MM, (sample.name, suffix)


def test_a_missing_assimp_library_is_a_clear_per_file_error(tmp_path):
    """impasse raises AssimpError (a BaseException) at import when libassimp.so is absent: a stand-in package
    that does exactly that must give a MotionIOError naming the file and the package to install."""
    import subprocess
    import sys

    fake = tmp_path / "fake" / "impasse"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("class AssimpError(BaseException):\n    pass\n"
                                      "raise AssimpError('assimp library not found')\n")
    (tmp_path / "take.fbx").write_bytes(b"Kaydara FBX Binary  \x00")
    code = ("import sys; from mofind.io import load_motions, MotionIOError\n"
            "try:\n    load_motions(sys.argv[1])\nexcept MotionIOError as exc:\n    print(exc)\n")
    env = {"PYTHONPATH": f"{tmp_path / 'fake'}:{REPO / 'backend'}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "take.fbx")], capture_output=True,
                            text=True, env=env, timeout=120)
    assert str(tmp_path / "take.fbx") in result.stdout and "libassimp5" in result.stdout, result.stderr[-2000:]
