"""Events -> clauses: the words for each event kind, the body parts each clause is about, and synonyms.

Templates are data. The first phrasing of each list is the canonical one (used without an rng); words
wrapped in `*...*` and the side/limb slots carry body-part meaning and are reported as `part_words`.
Parts use `mofind.features.parts.PART_NAMES`, so a clause points at the patch columns it talks about.
"""

from __future__ import annotations

import re

import numpy as np

from .events import Event

LEGS = ("l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle")
GAIT_PARTS = ("global",) + LEGS


def _arm(side: str | None) -> tuple[str, ...]:
    return {"left": ("l_shoulder", "l_elbow"), "right": ("r_shoulder", "r_elbow")}.get(
        side or "", ("l_shoulder", "l_elbow", "r_shoulder", "r_elbow"))


def _sided(side: str | None, *names: str) -> tuple[str, ...]:
    prefixes = {"left": ("l_",), "right": ("r_",)}.get(side or "", ("l_", "r_"))
    return tuple(p + n for p in prefixes for n in names)


# kind -> (phrasings, parts(event)); a phrasing may use {the_arm} {the_hand} {the_elbow} {the_leg} {the_knee}
# {dir} {it} {count}
TEMPLATES: dict[str, tuple[list[str], object]] = {
    "raise_arm": (["*raises* {the_arm}", "*lifts* {the_arm}", "*raises* {the_hand} up"], lambda e: _arm(e.side)),
    "raise_hand": (["*raises* {the_hand} to shoulder height", "*lifts* {the_hand} up to the shoulder",
                    "*brings* {the_hand} up to shoulder level"], lambda e: _arm(e.side)),
    "raise_arm_high": (["*raises* {the_arm} above the head", "*lifts* {the_hand} over the head",
                        "*puts* {the_hand} up above the head"], lambda e: _arm(e.side)),
    "wave": (["*waves* {the_hand}", "*waves* with {the_hand}", "*waves* {the_hand} back and forth"],
             lambda e: _arm(e.side)),
    "reach_forward": (["*reaches* forward with {the_hand}", "*stretches* {the_arm} out in front",
                       "*extends* {the_arm} forward"], lambda e: _arm(e.side)),
    "reach_sideways": (["*reaches* out to the side with {the_hand}", "*stretches* {the_arm} out to the side",
                        "*extends* {the_arm} sideways"], lambda e: _arm(e.side)),
    "punch": (["*punches* with {the_hand}{count}", "*throws* a *punch* with {the_hand}{count}",
               "*jabs* with {the_hand}{count}"], lambda e: _arm(e.side)),
    "elbow_bend": (["*bends* {the_elbow}", "*flexes* {the_elbow}"], lambda e: _sided(e.side, "elbow")),
    "kick": (["*kicks* {dir} with {the_leg}", "*kicks* {the_leg} {dir}", "does a *kick* {dir} with {the_leg}"],
             lambda e: _sided(e.side, "hip", "knee", "ankle")),
    "knee_lift": (["*lifts* {the_knee}", "*raises* {the_knee} up high", "*brings* {the_knee} up"],
                  lambda e: _sided(e.side, "hip", "knee")),
    "walk": (["*walks* {dir}", "is *walking* {dir}", "*walks* {dir} at a steady pace"], lambda e: GAIT_PARTS),
    "jog": (["*jogs* {dir}", "is *jogging* {dir}", "*jogs* {dir} at an easy pace"], lambda e: GAIT_PARTS),
    "run": (["*runs* {dir}", "is *running* {dir}", "*runs* {dir} quickly"], lambda e: GAIT_PARTS),
    "step": (["*takes* {count_a} *step*{plural} {dir}", "*steps* {dir}{count}", "*moves* a *step* {dir}"],
             lambda e: GAIT_PARTS),
    "jump": (["*jumps* {dir}{count}", "*leaps* {dir}{count}", "does a *jump* {dir}{count}"],
             lambda e: GAIT_PARTS),
    "turn": (["*turns* {dir}", "*turns* to the {dir}", "makes a *turn* to the {dir}"], lambda e: ("pelvis", "global")),
    "turn_around": (["*turns* around to the {dir}", "*turns* all the way around to the {dir}",
                     "*turns* around towards the {dir}"], lambda e: ("pelvis", "global")),
    "spin": (["*spins* around{count}", "*spins* around to the {dir}{count}", "*twirls* around{count}"],
             lambda e: ("pelvis", "global")),
    "squat": (["*squats* down", "*crouches* down", "*squats*"], lambda e: ("global",) + LEGS[:4]),
    "sit": (["*sits* down", "*sits* down and stays seated", "*takes* a seat"],
            lambda e: ("global", "pelvis") + LEGS[:4]),
    "sitting": (["*sits*", "is *sitting*", "stays *seated*"], lambda e: ("global", "pelvis") + LEGS[:4]),
    "stand_up": (["*stands* up", "*gets* up to *stand*", "*rises* to *stand*"],
                 lambda e: ("global", "pelvis") + LEGS[:4]),
    "lie": (["*lies* down", "*lies* down on the floor", "*lies* down flat"], lambda e: ("global", "pelvis", "lumbar")),
    "lying": (["*lies* on the floor", "is *lying* down", "stays *lying* down"],
              lambda e: ("global", "pelvis", "lumbar")),
    "get_up": (["*gets* up", "*gets* back up", "*gets* up off the floor"], lambda e: ("global", "pelvis", "lumbar")),
    "bend": (["*bends* forward", "*leans* forward", "*bends* over"], lambda e: ("lumbar", "pelvis")),
    "stand_still": (["*stands* still", "*stands* in place", "*stays* still"], lambda e: ("global",)),
    "moves": (["*moves* a little", "*shifts* slightly", "*moves* slightly"], lambda e: ()),
}
SUFFIXES = {
    "lowered": [" and *lowers* {it}", " and then *puts* {it} down", " and *brings* {it} back down"],
    "stands_back": [" and *stands* back up", " and then *stands* up again", " and *rises* again"],
    "straightens": [" and *straightens* up", " and then *stands* up straight", " and comes back up"],
}
SUBJECTS = ["a person", "someone", "the person"]
THEN = [", then ", " and then ", ", after that "]
AND = [" and ", " and at the same time ", " and meanwhile "]
_LIMBS = {"the_arm": ("arm", "arms"), "the_hand": ("hand", "hands"), "the_elbow": ("elbow", "elbows"),
          "the_leg": ("leg", "legs"), "the_knee": ("knee", "knees")}
_NUMBERS = {1: "", 2: " twice", 3: " three times"}
_DIRS = {"forward": "forward", "backward": "backward", "left": "left", "right": "right", "up": "up",
         "sideways": "to the side", "in place": "in place"}
_MARK = re.compile(r"\*([^*]+)\*")


def clause(event: Event, rng: np.random.Generator | None = None) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(text, parts, part_words) for one event; canonical wording when `rng` is None."""
    key, suffix = _template_key(event)
    phrasings, parts = TEMPLATES[key]
    text = _pick(phrasings, rng)
    if suffix:
        text += _pick(SUFFIXES[suffix], rng)
    slots = _slots(event)
    text = text.format(**slots)
    words = tuple(w for m in _MARK.findall(text) for w in m.split())
    text = _MARK.sub(r"\1", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text, tuple(parts(event)), words


def pick(options: list[str], rng: np.random.Generator | None) -> str:
    return _pick(options, rng)


def _pick(options: list[str], rng: np.random.Generator | None) -> str:
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def _template_key(event: Event) -> tuple[str, str | None]:
    d = event.detail
    if event.kind == "raise_arm":
        key = {"head": "raise_arm_high", "arm": "raise_arm", "hand": "raise_hand"}[d.get("level", "arm")]
        return key, ("lowered" if d.get("lowered") else None)
    if event.kind == "reach":
        return f"reach_{d.get('direction', 'forward')}", None
    if event.kind == "turn" and d.get("around"):
        return "turn_around", None
    if event.kind == "squat":
        return "squat", "stands_back" if d.get("leaves") else None
    if event.kind == "sit":
        return ("sit" if d.get("enters") else "sitting"), None
    if event.kind == "lie":
        return ("lie" if d.get("enters") else "lying"), None
    if event.kind == "bend":
        return "bend", "straightens" if d.get("leaves") else None
    return event.kind, None


def _slots(event: Event) -> dict[str, str]:
    side = event.side
    slots = {}
    for slot, (one, many) in _LIMBS.items():
        slots[slot] = f"*both* *{many}*" if side == "both" else f"the *{side}* *{one}*" if side else f"the *{one}*"
    slots["it"] = "them" if side == "both" else "it"
    d = event.detail
    direction = d.get("direction", event.side if event.kind in ("turn", "spin") else "")
    slots["dir"] = f"*{_DIRS.get(direction, direction)}*" if event.kind in ("turn", "spin") else \
        _DIRS.get(direction, direction)
    if event.kind == "step" and direction in ("left", "right"):
        slots["dir"] = f"to the {direction}"
    if event.kind in ("walk", "jog", "run") and direction in ("left", "right"):
        slots["dir"] = f"sideways to the {direction}"
    count = int(d.get("turns", d.get("count", 1)) or 1)
    slots["count"] = _NUMBERS.get(count, " several times")
    slots["count_a"] = {1: "a", 2: "two", 3: "three"}.get(count, "a few")
    slots["plural"] = "" if count == 1 else "s"
    return slots
