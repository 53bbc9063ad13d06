"""The words a model was trained on, so a query can say which of its words the model has never seen.

A MaxSim model scores every query token, known or not: "a person does a cartwheel" still gets a confident-looking
score from "a person". `vocabulary.json` in the model folder lists the lowercase words of every caption the model
was trained on *paired with motion* (text-only MLM captions do not count: they never taught a word what it looks
like), and `Vocabulary.unknown_words` names the query's content words (not stopwords) absent from it.

Words are compared after simple suffix rules (plural / verb -s, -es, -ies, -ing, -ed, doubled consonants), so
"waving", "waved" and "waves" all match "wave". Four suffix rules do not justify a stemming dependency, and a
full stemmer (Porter) would also merge words the model does tell apart.

>>> vocabulary = Vocabulary.from_dict(build_vocabulary(["a person waves the left hand", "someone running"]))
>>> vocabulary.unknown_words("A man is waving his left hand and runs")
['man']
>>> vocabulary.unknown_words("xyzzy plugh")
['xyzzy', 'plugh']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

VOCABULARY_FILE = "vocabulary.json"
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_VOWELS = set("aeiouy")

# Function words: never reported as unknown (they carry no motion, and a caption template may happen to lack one).
STOPWORDS = frozenset("""
a an the this that these those some any each every such another other
i me my mine we us our you your he him his she her hers it its they them their theirs one someone's
himself herself itself themselves myself yourself ourselves
is are was were be been being am do does did doing has have had having will would shall should can could may might
must and or but nor so then than as of to with without at by for from in on into onto about while also just again
very too now there here what which who whom whose when where how all both either neither not no s t
""".split())


# Where and which way a body part moves. The skiplist keeps them (model/skiplist.py), and a relaxed prompt
# (quality.relax) never leaves them out: without "left" a left-hand wave prompt asks for any wave.
SPATIAL_WORDS = frozenset("""
left right up down upward upwards downward downwards forward forwards backward backwards back over under around
straight sideways sideward ahead above below high low across behind front side toward towards away inward
outward clockwise counterclockwise anticlockwise circle circles
""".split())


def words_of(text: str) -> list[str]:
    """Lowercase words of a caption, in order ("Left-hand wave!" -> left, hand, wave; "person's" stays one word)."""
    return WORD.findall(text.lower())


def word_forms(word: str) -> set[str]:
    """The word and the stems its -s/-es/-ies/-ing/-ed suffixes may hide (stems shorter than 3 letters dropped).

    >>> sorted(word_forms("waving"))
    ['wav', 'wave', 'waving']
    >>> sorted(word_forms("running"))
    ['run', 'runn', 'runne', 'running']
    """
    if word.endswith("'s"):
        word = word[:-2]
    forms = {word}
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
        if word.endswith("ies"):
            forms.add(word[:-3] + "y")
        elif word.endswith("es"):
            forms.add(word[:-2])
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            if not set(stem) & _VOWELS:
                continue  # "sing", "bed": the "suffix" is part of the word
            forms.update((stem, stem + "e"))
            if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in _VOWELS | {"l", "s"}:
                forms.add(stem[:-1])  # running -> run, stepped -> step
            if suffix == "ed" and stem.endswith("i"):
                forms.add(stem[:-1] + "y")  # carried -> carry
    return {form for form in forms if len(form) >= 3}


def content_words(text: str) -> list[str]:
    """The words of `text` that are not stopwords, in order, without repeats."""
    seen: list[str] = []
    for word in words_of(text):
        if word not in STOPWORDS and word not in seen:
            seen.append(word)
    return seen


def build_vocabulary(texts: Iterable[str] | Mapping[str, Iterable[str]]) -> dict:
    """Captions (or `{source: captions}`) -> `{"words": sorted distinct words, "sources": {source: captions}}`.

    Pass every caption the model was trained on paired with motion (or every caption fragment: each word that
    can appear in one); `sources` counts the captions each source gave, so the file says where words came from.
    """
    by_source = texts if isinstance(texts, Mapping) else {"captions": texts}
    found: set[str] = set()
    sources: dict[str, int] = {}
    for source, captions in by_source.items():
        if isinstance(captions, str):
            raise TypeError(f"source {source!r}: expected a list of captions, got one string")
        count = 0
        for caption in captions:
            found.update(words_of(caption))
            count += 1
        sources[str(source)] = sources.get(str(source), 0) + count
    return {"words": sorted(found), "sources": sources}


def merge_vocabularies(*vocabularies: dict) -> dict:
    """Union of the words, sum of the per-source caption counts."""
    found: set[str] = set()
    sources: dict[str, int] = {}
    for vocabulary in vocabularies:
        found.update(vocabulary.get("words", ()))
        for source, count in vocabulary.get("sources", {}).items():
            sources[source] = sources.get(source, 0) + int(count)
    return {"words": sorted(found), "sources": sources}


def read_vocabulary(path: str | Path) -> dict:
    """Read and check a vocabulary file (ValueError naming the file when it is malformed)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("words"), list) \
            or not all(isinstance(word, str) for word in data["words"]):
        raise ValueError(f"{path}: expected an object with a 'words' list of strings")
    return data


def template_texts(templates) -> list[str]:
    """Every phrasing and sentence frame of a caption-template file (placeholders removed), and their mirrors.

    Any caption the templates can produce is made of these pieces, so their words are the captions' words.
    """
    from mofind.features.mirror import mirror_caption
    from mofind.train.captions import PLACEHOLDER

    pieces = list(templates.templates)
    pieces += [text for options in templates.shared.values() for text in options]
    pieces += [text for values in templates.phrases.values() for slots in values.values()
               for options in slots.values() for text in options]
    plain = [PLACEHOLDER.sub(" ", text) for text in pieces]
    return plain + [mirror_caption(text) for text in plain]


def write_vocabulary(model_dir: str | Path, vocabulary: dict) -> Path:
    path = Path(model_dir) / VOCABULARY_FILE
    path.write_text(json.dumps(vocabulary, indent=1) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Vocabulary:
    """A model's trained words, ready to check queries against."""

    words: frozenset[str]
    forms: frozenset[str]  # every word form of every word

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        lowered = frozenset(word.lower() for word in data["words"])
        return cls(words=lowered, forms=frozenset(form for word in lowered for form in word_forms(word)))

    @classmethod
    def load(cls, model_dir: str | Path) -> "Vocabulary | None":
        """The model folder's vocabulary, or None when it has none (the model cannot say what it knows)."""
        path = Path(model_dir) / VOCABULARY_FILE
        return cls.from_dict(read_vocabulary(path)) if path.is_file() else None

    def knows(self, word: str) -> bool:
        word = word.lower()
        return word in self.words or bool(word_forms(word) & self.forms)

    def unknown_words(self, text: str) -> list[str]:
        """Content words of `text` the model was never trained on, in query order."""
        return [word for word in content_words(text) if not self.knows(word)]

    def known_fraction(self, text: str) -> float:
        """Share of the content words the model knows (0.0 when the text has no content word at all)."""
        content = content_words(text)
        if not content:
            return 0.0
        return sum(self.knows(word) for word in content) / len(content)
