"""HumanML3D and KIT-ML folder readers on generated folders (always) and the shared sample (when present)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fixtures.synthetic import write_action_bvh
from mofind.io import MotionIOError
from mofind.io.humanml3d import HumanML3DFolder, read_captions
from mofind.io.kitml import KIT_JOINT_NAMES, SMPL_FROM_KIT, KITMLFolder, kit_to_smpl22
from mofind.skeleton import SMPL22_INDEX as I
from mofind.skeleton import load_motion


@pytest.fixture
def smpl_joints(tmp_path) -> np.ndarray:
    return load_motion(write_action_bvh(tmp_path / "w.bvh", "bandai", "raise_left", seconds=2.0)).joints


def _folder(root: Path, arrays: dict[str, np.ndarray], texts: dict[str, str], splits: dict[str, list[str]]) -> Path:
    (root / "new_joints").mkdir(parents=True)
    (root / "texts").mkdir()
    for motion_id, arr in arrays.items():
        np.save(root / "new_joints" / f"{motion_id}.npy", arr)
    for motion_id, text in texts.items():
        (root / "texts" / f"{motion_id}.txt").write_text(text)
    for split, ids in splits.items():
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return root


def test_humanml3d_folder_reads_ids_joints_and_captions(tmp_path, smpl_joints):
    text = ("a person raises the left hand.#a/DET person/NOUN raise/VERB the/DET left/ADJ hand/NOUN#0.0#0.0\n"
            "\n"
            "then lowers it#then/ADV lower/VERB it/PRON#1.5#3.25\n")
    root = _folder(tmp_path / "h", {"000001": smpl_joints, "000002": smpl_joints[:10]}, {"000001": text},
                   {"train": ["000001"], "test": ["000002"], "val": []})
    folder = HumanML3DFolder(root)
    assert folder.ids() == ["000001", "000002"] and folder.ids("train") == ["000001"] and folder.ids("val") == []
    caps = folder.captions("000001")
    assert [c.text for c in caps] == ["a person raises the left hand.", "then lowers it"]
    assert caps[0].whole_clip and caps[0].tokens[1] == "person/NOUN"
    assert (caps[1].start, caps[1].end) == (1.5, 3.25) and not caps[1].whole_clip
    np.testing.assert_array_equal(folder.joints("000001"), smpl_joints)
    motion = folder.motion("000002", fps=10.0)
    assert motion.fps == 10.0 and motion.joints.shape == (5, 22, 3) and motion.source_fps == 20.0
    np.testing.assert_allclose(load_motion(root / "new_joints" / "000001.npy").joints, smpl_joints)


def test_dataset_errors_name_the_file_and_line(tmp_path, smpl_joints):
    root = _folder(tmp_path / "h", {"a": smpl_joints[:, :21], "b": smpl_joints}, {"b": "fine#x#0#0\nbroken line\n"},
                   {})
    folder = HumanML3DFolder(root)
    with pytest.raises(MotionIOError, match=r"a\.npy: expected joints of shape \(T, 22, 3\), found \(40, 21, 3\)"):
        folder.joints("a")
    with pytest.raises(MotionIOError, match=r"b\.txt:2: caption line needs") as err:
        folder.captions("b")
    assert err.value.line == 2
    (root / "texts" / "c.txt").write_text("x#y#zero#1\n")
    with pytest.raises(MotionIOError, match="non-numeric caption time"):
        read_captions(root / "texts" / "c.txt")
    with pytest.raises(MotionIOError, match="split file train.txt is missing"):
        folder.ids("train")
    with pytest.raises(MotionIOError, match="new_joints/ is missing"):
        HumanML3DFolder(tmp_path)


def _smpl_to_kit_mm(smpl: np.ndarray) -> np.ndarray:
    kit = np.zeros((smpl.shape[0], 21, 3))
    for smpl_name, kit_name in SMPL_FROM_KIT.items():
        kit[:, KIT_JOINT_NAMES.index(kit_name)] = smpl[:, I[smpl_name]]
    kit[:, KIT_JOINT_NAMES.index("root")] = smpl[:, I["pelvis"]]
    kit[:, KIT_JOINT_NAMES.index("upper_neck")] = 0.5 * (smpl[:, I["neck"]] + smpl[:, I["head"]])
    for side in ("left", "right"):
        kit[:, KIT_JOINT_NAMES.index(f"{side}_ankle_2")] = smpl[:, I[f"{side}_ankle"]]
    return kit * 1000.0


def test_kit_joints_are_reordered_into_smpl22_in_metres(tmp_path, smpl_joints):
    kit_mm = _smpl_to_kit_mm(smpl_joints)
    smpl = kit_to_smpl22(kit_mm)
    mapped = [I[n] for n in SMPL_FROM_KIT]
    np.testing.assert_allclose(smpl[:, mapped], smpl_joints[:, mapped], atol=1e-5)
    # interpolated joints land near the rig's own spine and collars
    for name in ("spine1", "spine2", "spine3", "left_collar", "right_collar"):
        assert np.abs(smpl[:, I[name]] - smpl_joints[:, I[name]]).max() < 0.08, name
    assert smpl[0, I["left_collar"], 0] > smpl[0, I["right_collar"], 0]

    root = _folder(tmp_path / "k", {"00001": kit_mm.astype(np.float32)}, {"00001": "a man waves##0.0#0.0\n"},
                   {"train": ["00001"]})
    folder = KITMLFolder(root)
    assert folder.fps == 12.5 and folder.joints("00001").shape == (40, 22, 3)
    assert load_motion(root / "new_joints" / "00001.npy").source_fps == 12.5


@pytest.mark.needs_shared
def test_shared_humanml3d_sample(shared):
    root = shared / "data" / "humanml3d-sample"
    if not root.is_dir():
        pytest.skip("humanml3d-sample absent")
    folder = HumanML3DFolder(root)
    motion_id = folder.ids("train")[0]
    joints = folder.joints(motion_id)
    assert joints.ndim == 3 and joints.shape[1:] == (22, 3) and joints.dtype == np.float32
    assert len(folder.captions(motion_id)) >= 1 and all(c.text for c in folder.captions(motion_id))
    assert abs(joints[..., 1].min()) < 1e-4  # HumanML3D puts the floor at y = 0
    assert joints[0, I["left_hip"], 0] > joints[0, I["right_hip"], 0]  # left is +X
