"""The cmu-captioned archive: typed records from captions.json, and both rigs as sensible SMPL-22 bodies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mofind.skeleton import SMPL22_INDEX as I
from mofind.train import cmu


def test_parse_captions_types_segments_and_names_a_bad_take(tmp_path):
    entry = {"file": "bvh/a.bvh", "rig": "cmu-31", "fps": 120, "frames": 240, "cmu_description": "walk",
             "cmu_category": "locomotion",
             "humanml3d": [{"humanml3d_id": "000001", "split": "train", "start_s": 0.5, "end_s": 1.75,
                            "texts": ["a person walks", "someone walks forward", "walking"]}]}
    (tmp_path / "captions.json").write_text(json.dumps({"b": {**entry, "humanml3d": None}, "a": entry}))
    takes = cmu.parse_captions(tmp_path / "captions.json")
    assert [t.take_id for t in takes] == ["a", "b"]
    a = takes[0]
    assert a.bvh == tmp_path / "bvh" / "a.bvh" and a.duration == 2.0 and a.description == "walk"
    assert a.segments[0].start_s == 0.5 and a.segments[0].texts[1] == "someone walks forward"
    assert takes[1].segments == ()
    (tmp_path / "captions.json").write_text(json.dumps({"broken": {"file": "x.bvh"}}))
    with pytest.raises(ValueError, match="broken"):
        cmu.parse_captions(tmp_path / "captions.json")


@pytest.mark.needs_shared
def test_both_rigs_load_as_plausible_bodies(shared):
    takes = cmu.load_takes()
    assert len(takes) == 82 and {t.rig for t in takes} == set(cmu.RIGS)
    assert sum(bool(t.segments) for t in takes) == 34
    by_id = {t.take_id: t for t in takes}
    presets = {"08_01": "cmu_bvh", "09_01": "cmu_bvh", "12_01": "daz", "13_11": "daz", "16_01": "cmu_asf"}
    for take_id in presets:  # a walk and a run (cmu-31); a walk and a jump (Daz); a jump with ASF bone names
        take = by_id[take_id]
        assert take.bvh.is_file()
        motion = take.load()
        j = motion.joints
        assert motion.mapping["preset"] == presets[take_id]  # 16_01 is listed as cmu-daz-43 but is not
        assert 1.4 < motion.mapping["height_m"] < 2.1, take_id
        feet = j[:, [I["left_ankle"], I["right_ankle"], I["left_foot"], I["right_foot"]], 1].min(axis=1)
        assert np.median(feet) < 0.1 and feet.min() > -0.02, take_id  # on the floor, never through it
        assert 1.2 < np.median(j[:, I["head"], 1]) < 1.8, take_id
        assert j[0, I["left_hip"], 0] > j[0, I["right_hip"], 0], take_id  # left is +X when facing +Z
        toes = j[:, [I["left_foot"], I["right_foot"]], 2] - j[:, [I["left_ankle"], I["right_ankle"]], 2]
        assert np.median(toes) > 0.02, take_id  # toes point the way the body faces: sides are not mirrored
        if take_id != "16_01":
            assert j[-1, 0, 2] - j[0, 0, 2] > 1.0, take_id  # these takes travel forward (+Z)
