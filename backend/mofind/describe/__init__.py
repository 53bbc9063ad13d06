"""A kinematic describer: SMPL-22 joint positions -> deterministic sentences about body parts over time.

    from mofind.describe import describe_motion, Description, Phrase
    d = describe_motion(joints, fps)          # canonical wording
    d = describe_motion(joints, fps, rng)     # varied wording (synonyms, order of concurrent clauses)

Modules: kinematics (shared per-frame signals), segments (masks -> intervals), arms / legs / posture /
locomotion (detectors -> `Event`s), wording (events -> clauses, parts, synonyms), describer (selection
and the sentence), report (agreement with labelled data). Ideas from PoseScript's posecodes (Delmas et
al., ECCV 2022) and MotionScript (Yazdian et al., 2023), re-implemented; see docs/describer.md.
"""

from .describer import Description, Phrase, describe_motion

__all__ = ["Description", "Phrase", "describe_motion"]
