"""The unit the detectors produce and the wording consumes: one thing a body part does over a time span."""

from __future__ import annotations

from dataclasses import dataclass, field


LEVELS = ("head", "arm", "hand")  # how high a raised hand got, highest first


@dataclass
class Event:
    """`kind` names the action (see `wording.TEMPLATES`); `side` is "left", "right", "both" or None;
    `salience` ranks events when a sentence must stay short; `detail` holds kind-specific words
    (direction, count, above_head, ...)."""

    kind: str
    start_s: float
    end_s: float
    side: str | None = None
    salience: float = 1.0
    detail: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.end_s - self.start_s


def merge_sides(events: list[Event], kind: str, min_shared: float = 0.5) -> list[Event]:
    """Left and right events of `kind` that mostly overlap become one "both" event."""
    from .segments import overlap

    mine = [e for e in events if e.kind == kind]
    rest = [e for e in events if e.kind != kind]
    lefts = [e for e in mine if e.side == "left"]
    rights = [e for e in mine if e.side == "right"]
    used: set[int] = set()
    out: list[Event] = []
    for lft in lefts:
        partner = None
        for i, rgt in enumerate(rights):
            shared = overlap((lft.start_s, lft.end_s), (rgt.start_s, rgt.end_s))
            if i not in used and shared >= min_shared * min(lft.duration, rgt.duration):
                partner = i
                break
        if partner is None:
            out.append(lft)
            continue
        used.add(partner)
        rgt = rights[partner]
        detail = {k: v for k, v in lft.detail.items() if rgt.detail.get(k) == v}
        if "level" in lft.detail and "level" in rgt.detail:  # both arms up: say the higher one
            detail["level"] = min(lft.detail["level"], rgt.detail["level"], key=LEVELS.index)
        out.append(Event(kind, min(lft.start_s, rgt.start_s), max(lft.end_s, rgt.end_s), "both",
                         max(lft.salience, rgt.salience) * 1.2, detail))
    out += [r for i, r in enumerate(rights) if i not in used]
    return rest + out
