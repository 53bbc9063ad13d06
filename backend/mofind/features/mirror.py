"""Left/right mirroring of motions and captions (HumanML3D-style data augmentation).

A mirrored clip is only a valid training pair if its caption is mirrored too ("raises the left
hand" becomes "raises the right hand"), so both live here.
"""

from __future__ import annotations

import re

import numpy as np

# SMPL-22 left joints and their right counterparts (hip, knee, ankle, foot, collar, shoulder,
# elbow, wrist); the spine, neck and head map onto themselves.
LEFT_CHAIN = (1, 4, 7, 10, 13, 16, 18, 20)
RIGHT_CHAIN = (2, 5, 8, 11, 14, 17, 19, 21)


def _mirror_permutation() -> np.ndarray:
    perm = np.arange(22)
    perm[list(LEFT_CHAIN)] = RIGHT_CHAIN
    perm[list(RIGHT_CHAIN)] = LEFT_CHAIN
    return perm


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """Mirror a (T, 22, 3) SMPL-order motion through the body's sagittal plane.

    HumanML3D convention (left is +x): negate x, then swap every left joint with its right twin,
    so the left hand's trajectory becomes the right hand's. Returns a new array of the same dtype;
    mirroring twice gives the input back exactly.
    """
    arr = np.asarray(joints)
    if arr.ndim != 3 or arr.shape[1:] != (22, 3):
        raise ValueError(f"joint positions must have shape (T, 22, 3), got {arr.shape}")
    out = arr[:, _mirror_permutation()].copy()
    out[..., 0] *= -1
    return out


# One alternative per mirrored term; longer forms first so "counter-clockwise" is not read as
# "clockwise". \b on both sides keeps words like "leftover", "bright" or "upright" untouched,
# while hyphenated forms ("left-hand", "right-handed") still swap their side word.
_SIDE_TERMS = {
    "left": "right",
    "right": "left",
    "leftward": "rightward",
    "rightward": "leftward",
    "leftwards": "rightwards",
    "rightwards": "leftwards",
    "leftmost": "rightmost",
    "rightmost": "leftmost",
    "clockwise": "counterclockwise",
    "counterclockwise": "clockwise",
    "counter-clockwise": "clockwise",
    "anticlockwise": "clockwise",
    "anti-clockwise": "clockwise",
}


def _side_pattern() -> re.Pattern[str]:
    terms = sorted(_SIDE_TERMS, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\b", re.IGNORECASE)


def _match_case(template: str, word: str) -> str:
    """Give ``word`` the capitalisation style of ``template`` (lower, Title or UPPER)."""
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[0].isupper():
        return word[0].upper() + word[1:]
    return word


def mirror_caption(text: str) -> str:
    """Swap left/right wording in a caption to describe the mirrored motion.

    >>> mirror_caption("Kicks with the LEFT leg, turns clockwise, eats leftovers")
    'Kicks with the RIGHT leg, turns counterclockwise, eats leftovers'
    """
    pattern = _side_pattern()
    return pattern.sub(lambda m: _match_case(m.group(0), _SIDE_TERMS[m.group(0).lower()]), text)
