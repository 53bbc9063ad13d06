"""Captions from file names: a small template file turns a studio's naming convention into text.

A labelled BVH folder has no captions, only names like `dataset-2_wave-left-hand_elderly_012`.
The template file (JSON) says how to read labels out of a name and how to talk about each label:

    {
      "pattern": "dataset-2_(?P<content>[a-z-]+)_(?P<style>[a-z]+)_\\d+",
      "shared": {"person": ["a person", "someone"], "poss": ["their", "the"]},
      "phrases": {
        "content": {"wave-left-hand": {"verb": ["waves {poss} left hand", ...], "ing": [...]}},
        "style":   {"elderly": {"subject": ["an elderly person", ...], "manner": ["slowly, like an old man", ...]}}
      },
      "templates": ["{style_subject} {content_verb}", "{person} {content_verb} {style_manner}", ...]
    }

An optional `"parts"` object names the body parts (`mofind.features.parts.PART_NAMES`) each label value moves,
e.g. `{"content": {"wave-left-hand": ["l_shoulder", "l_elbow"]}}`: training then teaches the words of that
label's phrasing to match those parts (`sample_with_spans`), so explanations point at the moving limb.

A template placeholder `{group_slot}` is filled with one phrasing of that slot for the take's label in
`group`; `{name}` alone comes from `shared`. Phrasings may contain placeholders themselves (`{poss}`).
Many phrasings per label and many templates give the text encoder varied wording, so free-form queries
it never saw still land near the right motions. Sampling is done afresh at every training step.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from mofind.features.mirror import mirror_caption

PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
_MAX_NESTING = 4


class CaptionTemplateError(ValueError):
    """A caption template file is malformed; the message names the file and the offending entry."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


def tidy(text: str) -> str:
    """Clean up what empty phrasings leave behind: doubled spaces, stray or doubled commas."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+,", ",", text)
    text = re.sub(r",(\s*,)+", ",", text)
    return text.strip(" ,")


@dataclass(frozen=True)
class CaptionTemplates:
    """Parsed template file: a filename regex, phrasings per label value and slot, sentence templates."""

    pattern: re.Pattern
    phrases: dict[str, dict[str, dict[str, tuple[str, ...]]]]  # group -> value -> slot -> phrasings
    shared: dict[str, tuple[str, ...]]  # slot -> phrasings usable by any template
    templates: tuple[str, ...]
    source: str = "<memory>"
    parts: dict[str, dict[str, tuple[str, ...]]] = None  # group -> value -> body parts it moves (optional)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> "CaptionTemplates":
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CaptionTemplateError(path, "caption template file not found") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CaptionTemplateError(path, f"not valid JSON ({exc})") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "<memory>") -> "CaptionTemplates":
        if not isinstance(raw, dict):
            raise CaptionTemplateError(source, "top level must be a JSON object")
        for key in ("pattern", "phrases", "templates"):
            if key not in raw:
                raise CaptionTemplateError(source, f"missing required key {key!r}")
        try:
            pattern = re.compile(raw["pattern"])
        except (re.error, TypeError) as exc:
            raise CaptionTemplateError(source, f"'pattern' is not a valid regular expression ({exc})") from None
        phrases = {
            group: {
                value: _slots(source, f"phrases.{group}.{value}", slots)
                for value, slots in _object(source, f"phrases.{group}", values).items()
            }
            for group, values in _object(source, "phrases", raw["phrases"]).items()
        }
        shared = _slots(source, "shared", raw.get("shared", {}))
        templates = _phrase_list(source, "templates", raw["templates"])
        parts = {group: {value: _part_list(source, f"parts.{group}.{value}", names)
                         for value, names in _object(source, f"parts.{group}", values).items()}
                 for group, values in _object(source, "parts", raw.get("parts", {})).items()}
        result = cls(pattern=pattern, phrases=phrases, shared=shared, templates=templates, source=source,
                     parts=parts)
        result._validate()
        return result

    def _validate(self) -> None:
        groups = set(self.pattern.groupindex)
        missing = set(self.phrases) - groups
        if missing:
            raise CaptionTemplateError(
                self.source, f"phrases given for {sorted(missing)} but 'pattern' has no such named group")
        if not groups & set(self.phrases):
            raise CaptionTemplateError(self.source, "'pattern' must have at least one named group with phrases")
        # every placeholder must resolve for every label value, at any nesting depth
        for group, values in self.phrases.items():
            for value in values:
                for template in self.templates:
                    self._check_resolvable(template, {group: value}, f"template {template!r}")

    def _check_resolvable(self, text: str, labels: dict[str, str], where: str, depth: int = 0) -> None:
        if depth > _MAX_NESTING:
            raise CaptionTemplateError(self.source, f"placeholders nested too deeply (cycle?) in {where}")
        for name in PLACEHOLDER.findall(text):
            choices = self._choices(name, labels, strict=False)
            if choices is None:
                raise CaptionTemplateError(
                    self.source, f"{where}: placeholder {{{name}}} is not defined for labels {labels}")
            for choice in choices:
                self._check_resolvable(choice, labels, f"{where} -> {{{name}}}", depth + 1)

    # ------------------------------------------------------------------ labels
    def labels_for(self, name: str | Path) -> dict[str, str] | None:
        """Labels parsed from a file name (stem) when it matches the pattern and every label is known, else None."""
        stem = Path(name).stem if isinstance(name, Path) or name.lower().endswith(".bvh") else name
        match = self.pattern.fullmatch(stem)
        if match is None:
            return None
        labels = {group: match.group(group) for group in self.phrases}
        if any(value not in self.phrases[group] for group, value in labels.items()):
            return None
        return labels

    def mirror_labels(self, labels: dict[str, str]) -> dict[str, str] | None:
        """Labels of the left-right mirrored take (wave-left-hand -> wave-right-hand); None if one has no twin.

        Label values are mirrored with the same word rules as captions (`features.mirror.mirror_caption`).
        """
        mirrored = {}
        for group, value in labels.items():
            twin = mirror_caption(value)
            if twin not in self.phrases.get(group, {}):
                return None
            mirrored[group] = twin
        return mirrored

    # ------------------------------------------------------------------ captions
    def sample(self, labels: dict[str, str], rng: random.Random) -> str:
        """One random caption: a random template filled with random phrasings (fresh at every call)."""
        return tidy(self._fill(rng.choice(self.templates), labels, lambda options: rng.choice(options)))

    def sample_with_spans(self, labels: dict[str, str], rng: random.Random
                          ) -> tuple[str, list[tuple[int, int, tuple[str, ...]]]]:
        """A random caption and, for each label with body parts (`parts`), the character span of its phrasing
        and those parts: `(text, [(start, end, parts), ...])`. A phrasing that tidying altered gets no span."""
        chosen: list[tuple[str, tuple[str, ...]]] = []

        def pick_slot(name: str) -> str:
            choice = rng.choice(self._choices(name, labels, strict=True))
            filled = tidy(self._fill(choice, labels, lambda options: rng.choice(options)))
            for group, value in labels.items():
                moved = (self.parts or {}).get(group, {}).get(value)
                if moved and name.startswith(f"{group}_"):
                    chosen.append((filled, moved))
            return filled

        text = tidy(PLACEHOLDER.sub(lambda m: pick_slot(m.group(1)), rng.choice(self.templates)))
        spans, cursor = [], 0
        for phrase, moved in chosen:
            start = text.find(phrase, cursor)
            if start >= 0:
                spans.append((start, start + len(phrase), moved))
                cursor = start + len(phrase)
        return text, spans

    def vocabulary(self) -> set[str]:
        """Every lowercase word any caption of these templates can contain (placeholder names excluded)."""
        texts = list(self.templates) + [p for options in self.shared.values() for p in options]
        texts += [p for values in self.phrases.values() for slots in values.values()
                  for options in slots.values() for p in options]
        words = (re.findall(r"[a-z]+(?:'[a-z]+)?", PLACEHOLDER.sub(" ", text).lower()) for text in texts)
        return {word for found in words for word in found}

    def canonical(self, labels: dict[str, str]) -> str:
        """The deterministic caption (first template, first phrasing everywhere) used for evaluation."""
        return tidy(self._fill(self.templates[0], labels, lambda options: options[0]))

    def _fill(self, text: str, labels: dict[str, str], pick) -> str:
        for _ in range(_MAX_NESTING + 1):
            if not PLACEHOLDER.search(text):
                return text
            text = PLACEHOLDER.sub(lambda m: pick(self._choices(m.group(1), labels, strict=True)), text)
        raise CaptionTemplateError(self.source, f"placeholders nested too deeply in {text!r}")

    def _choices(self, name: str, labels: dict[str, str], strict: bool) -> tuple[str, ...] | None:
        if name in self.shared:
            return self.shared[name]
        for group, value in labels.items():
            prefix = f"{group}_"
            if name.startswith(prefix):
                slot = name[len(prefix):]
                slots = self.phrases.get(group, {}).get(value, {})
                if slot in slots:
                    return slots[slot]
        if not strict:
            # a placeholder of a group not among `labels` is checked when that group is validated
            if any(name.startswith(f"{group}_") and group not in labels for group in self.phrases):
                return ()
            return None
        raise CaptionTemplateError(self.source, f"placeholder {{{name}}} is not defined for labels {labels}")


def _object(source: str, where: str, value) -> dict:
    if not isinstance(value, dict):
        raise CaptionTemplateError(source, f"'{where}' must be a JSON object")
    return value


def _slots(source: str, where: str, value) -> dict[str, tuple[str, ...]]:
    return {slot: _phrase_list(source, f"{where}.{slot}", items)
            for slot, items in _object(source, where, value).items()}


def _part_list(source: str, where: str, value) -> tuple[str, ...]:
    from mofind.features.parts import PART_NAMES

    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise CaptionTemplateError(source, f"'{where}' must be a non-empty list of body part names")
    unknown = [item for item in value if item not in PART_NAMES]
    if unknown:
        raise CaptionTemplateError(source, f"'{where}': unknown body part(s) {unknown}; known: {list(PART_NAMES)}")
    return tuple(value)


def _phrase_list(source: str, where: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        raise CaptionTemplateError(source, f"'{where}' must be a non-empty list of strings")
    return tuple(value)
