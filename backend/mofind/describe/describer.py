"""`describe_motion`: detectors -> events -> a short, time-ordered sentence with per-clause body parts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import arms, legs, locomotion, posture
from .events import Event
from .kinematics import measure
from .segments import overlap
from .wording import AND, SUBJECTS, THEN, clause, pick

MAX_CLAUSES = 5
CONCURRENT = 0.5  # a clause sharing this fraction of its time with the previous one joins it with "and"


@dataclass(frozen=True)
class Phrase:
    """One clause of the sentence: what it says, which body parts (`PART_NAMES`) it is about, and when."""

    text: str
    parts: tuple[str, ...]
    start_s: float
    end_s: float
    kind: str
    part_words: tuple[str, ...] = ()


@dataclass(frozen=True)
class Description:
    sentence: str
    phrases: list[Phrase]


def describe_motion(joints: np.ndarray, fps: float, rng: np.random.Generator | None = None) -> Description:
    """Describe SMPL-22 joints (T, 22, 3; metres, Y-up) at `fps`; `rng` varies the wording, None = canonical."""
    k = measure(joints, fps)
    events = detect_events(k)
    chosen = _select(events)
    if not chosen:
        moving = np.abs(np.diff(k.joints, axis=0)).max() * k.fps / k.leg > 0.2 if k.frames > 1 else False
        chosen = [Event("moves" if moving else "stand_still", 0.0, k.duration)]
    phrases = []
    for event in chosen:
        text, parts, words = clause(event, rng)
        phrases.append(Phrase(text, parts, round(event.start_s, 3), round(event.end_s, 3), event.kind, words))
    return Description(_sentence(phrases, rng), phrases)


def detect_events(k) -> list[Event]:
    """Every event the detectors find in a `Kinematics`, after removing the ones others explain better."""
    gait, busy = locomotion.detect(k)
    events = gait + arms.detect(k, busy) + legs.detect(k, busy) + posture.detect(k)
    events += _transitions(events)
    events = _prune(events)
    covered = np.zeros(k.frames, dtype=bool)
    for e in events:
        covered[int(e.start_s * k.fps):int(np.ceil(e.end_s * k.fps))] = True
    return events + locomotion.still(k, covered)


def _transitions(events: list[Event]) -> list[Event]:
    """Leaving a sitting or lying posture is its own clause ("stands up", "gets up")."""
    out = []
    for e in events:
        if e.kind in ("sit", "lie") and e.detail.get("leaves"):
            out.append(Event("stand_up" if e.kind == "sit" else "get_up", e.end_s, e.end_s + 0.5, None, e.salience))
    return out


def _shares(a: Event, b: Event, fraction: float = 0.5) -> bool:
    return overlap((a.start_s, a.end_s), (b.start_s, b.end_s)) >= fraction * max(min(a.duration, b.duration), 1e-6)


def _same_side(a: Event, b: Event) -> bool:
    return a.side == b.side or "both" in (a.side, b.side)


def _prune(events: list[Event]) -> list[Event]:
    """Drop events another event already explains (the bent elbow of a wave, the crouch before a jump...)."""
    def explained(e: Event) -> bool:
        for o in events:
            if o is e:
                continue
            if e.kind == "knee_lift" and o.kind in ("sit", "squat", "lie", "jump") and _shares(e, o, 0.3):
                return True
            if e.kind == "elbow_bend" and o.kind in ("wave", "punch", "raise_arm") and _same_side(e, o) \
                    and _shares(e, o, 0.3):
                return True
            if e.kind == "reach" and o.kind in ("raise_arm", "punch", "wave") and _same_side(e, o) and \
                    (_shares(e, o) or -0.2 < o.start_s - e.end_s < 0.4 or -0.2 < e.start_s - o.end_s < 0.4):
                return True  # the arm passes through a reach on its way up or down
            if e.kind == "raise_arm" and o.kind == "wave" and _same_side(e, o) and _shares(e, o, 0.3) \
                    and e.detail.get("level") != "head":
                return True
            if e.kind == "squat" and o.kind == "jump" and e.duration < 1.5 and \
                    (abs(e.end_s - o.start_s) < 0.5 or abs(e.start_s - o.end_s) < 0.5 or _shares(e, o, 0.2)):
                return True
            if e.kind in ("squat", "bend") and o.kind in ("sit", "lie") and _shares(e, o, 0.3):
                return True
            if e.kind == "step" and o.kind == "jump" and _shares(e, o, 0.3):
                return True
        return False

    return [e for e in events if not explained(e)]


def _select(events: list[Event]) -> list[Event]:
    """Merge repeats, keep the MAX_CLAUSES most salient events, in time order."""
    events = sorted(events, key=lambda e: (e.start_s, -e.salience))
    merged: list[Event] = []
    for e in events:
        def same(m: Event) -> bool:
            return m.kind == e.kind and m.side == e.side and m.detail.get("direction") == e.detail.get("direction")

        # a repeat right after its twin merges within 3 s; with other clauses in between, within 1 s
        twin = merged[-1] if merged and same(merged[-1]) and e.start_s - merged[-1].end_s < 3.0 else \
            next((m for m in reversed(merged[-3:]) if same(m) and e.start_s - m.end_s < 1.0), None)
        if twin is not None and e.kind not in ("sit", "lie", "stand_up", "get_up", "stand_still"):
            twin.end_s = max(twin.end_s, e.end_s)
            if "count" in twin.detail and "count" in e.detail:
                twin.detail["count"] += e.detail["count"]
            continue
        merged.append(e)
    if len(merged) > MAX_CLAUSES:
        keep = sorted(sorted(range(len(merged)), key=lambda i: -merged[i].salience * (1 + merged[i].duration) ** 0.3)
                      [:MAX_CLAUSES])
        merged = [merged[i] for i in keep]
    return merged


def _sentence(phrases: list[Phrase], rng: np.random.Generator | None) -> str:
    """Join clauses in time order: "and" for ones that happen together, "then" for ones that follow."""
    groups: list[list[Phrase]] = []
    for p in phrases:
        last = groups[-1][-1] if groups else None
        if last is not None and overlap((last.start_s, last.end_s), (p.start_s, p.end_s)) >= \
                CONCURRENT * max(p.end_s - p.start_s, 1e-6):
            groups[-1].append(p)
        else:
            groups.append([p])
    parts = []
    for group in groups:
        texts = [p.text for p in group]
        if rng is not None and len(texts) > 1 and rng.random() < 0.5:
            texts = texts[::-1]  # clauses that happen together may be said in either order
        joined = texts[0]
        for t in texts[1:]:
            joined += pick(AND, rng) + t
        parts.append(joined)
    body = parts[0]
    for t in parts[1:]:
        body += pick(THEN, rng) + t
    return f"{pick(SUBJECTS, rng)} {body}"
