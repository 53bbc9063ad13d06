"""The words a library already holds about each take, collected at index time (see docs/user-guide.md).

Two sources, kept apart so a result can say which one matched:
  * "name": the folders below the indexed root, the file name and the take name, split into words
    (CamelCase, snake_case, kebab-case; numbers, single letters and generic words such as "mocap" or "take"
    dropped): `Locomotion/Sit/Sitting_Down_Chair_03.fbx` -> "locomotion sit sitting down chair".
  * "label": descriptions written for the take — a sidecar `<file stem>.txt` (plain text, or HumanML3D's
    `caption#tokens#start#end` lines) or `<file stem>.json` (a string, a list of strings, or an object with
    "description"/"descriptions"/"label"/"labels"/"caption"/"captions"/"text"/"texts"); a folder table
    `descriptions|labels|captions.csv|json` (or `*_captions.json`) mapping file names or stems to descriptions
    (CSV: a header with a file column — file/filename/name/take/path/id — and one or more description columns —
    description/label/caption/text/category; JSON: {"stem": "text" | [texts] | {"description": ..., ...}} or
    [{"file": ..., "description": ...}]); and for HumanML3D folders, `texts/<id>.txt` beside `new_joints/`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from functools import lru_cache
from pathlib import Path

TABLE_STEMS = ("descriptions", "labels", "captions")
KEY_COLUMNS = ("file", "filename", "file_name", "name", "take", "path", "id", "clip", "take_id")
TEXT_KEYS = ("description", "descriptions", "label", "labels", "caption", "captions", "text", "texts",
             "cmu_description", "category", "cmu_category")
GENERIC = frozenset("""
bvh fbx glb gltf npy new joints joint mocap motion motions data dataset datasets anim anims animation animations
take takes clip clips mixamo com armature scene files file export exports library libraries seq sequence trial
subject capture captures the and of with in on to final version ver copy untitled default action actions
""".split())
MAX_TEXT_CHARS = 2000  # a sidecar is a description, not a novel: longer text is cut
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def split_words(text: str) -> list[str]:
    """Words of a name: CamelCase / snake_case / kebab-case split, lower case, numbers and 1-letter parts dropped.

    >>> split_words("Sitting_Down_Chair_03")
    ['sitting', 'down', 'chair']
    >>> split_words("mixamorig:LeftArmRaise2x")
    ['mixamorig', 'left', 'arm', 'raise']
    """
    words = []
    for chunk in re.split(r"[^A-Za-z0-9]+", text):
        for part in _CAMEL.findall(chunk):
            word = part.lower()
            if len(word) > 1 and not word.isdigit():
                words.append(word)
    return words


def name_text(path: str | Path, root: str | Path | None = None, take: str = "") -> str:
    """The "name" words of a take: folders below `root` (its own name included), file stem, take name."""
    path = Path(path)
    parts = []
    if root is not None:
        root = Path(root)
        try:
            relative = path.parent.relative_to(root)
            parts = [root.name, *relative.parts]
        except ValueError:
            parts = []
    parts += [path.stem, take.split("|")[-1]]  # FBX stacks from Blender read "Armature|Walk"
    words = []
    for part in parts:
        for word in split_words(part):
            if word not in GENERIC and word not in words:
                words.append(word)
    return " ".join(words)


def label_text(path: str | Path, take: str = "", root: str | Path | None = None) -> str:
    """The "label" text of a take: sidecar files, folder tables (in its folder and the folders above it up to
    `root`) and HumanML3D captions, joined with "; "."""
    path = Path(path)
    found: list[str] = []
    for text in (*_sidecar_texts(path), *_table_texts(path, take, root), *_humanml3d_texts(path)):
        text = " ".join(str(text).split())
        if text and text not in found:
            found.append(text)
    return "; ".join(found)[:MAX_TEXT_CHARS]


def take_texts(path: str | Path, root: str | Path | None = None, take: str = "") -> dict[str, str]:
    """{"name": ..., "label": ...} with empty sources left out."""
    texts = {"name": name_text(path, root, take), "label": label_text(path, take, root)}
    return {source: text for source, text in texts.items() if text}


# --------------------------------------------------------------------------- sources


def _sidecar_texts(path: Path) -> list[str]:
    texts = []
    txt = path.with_suffix(".txt")
    if txt.is_file():
        texts += _caption_lines(_read(txt))
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            texts += _texts_of(json.loads(_read(sidecar)))
        except ValueError:
            pass  # not JSON: a label file must never stop indexing
    return texts


def _humanml3d_texts(path: Path) -> list[str]:
    if path.suffix.lower() != ".npy" or path.parent.name not in ("new_joints", "new_joint_vecs"):
        return []
    captions = path.parent.parent / "texts" / f"{path.stem}.txt"
    return _caption_lines(_read(captions)) if captions.is_file() else []


def _table_texts(path: Path, take: str, root: str | Path | None) -> list[str]:
    keys = {path.name.lower(), path.stem.lower()}
    if take:
        keys |= {take.lower(), take.split("|")[-1].lower(), f"{path.stem}#{take}".lower()}
    folders = [path.parent]
    if root is not None:
        root = Path(root)
        folders += [f for f in path.parent.parents if f == root or root in f.parents]
    texts = []
    for folder in folders:
        for table in _folder_tables(folder):
            for key in keys:
                texts += table.get(key, [])
    return texts


def _folder_tables(folder: Path) -> list[dict[str, list[str]]]:
    try:
        listed = os.stat(folder).st_mtime_ns
    except OSError:
        return []
    tables = []
    for candidate in _table_files(str(folder), listed):
        try:
            stat = os.stat(candidate)
        except OSError:
            continue
        tables.append(_load_table(candidate, stat.st_mtime_ns, stat.st_size, candidate.lower().endswith(".csv")))
    return tables


def forget_folder_listings() -> None:
    """Drop the cached folder listings (`_table_files`): each indexing run lists its folders afresh, so a table added
    within a coarse file-system timestamp's tick of an earlier listing is still found by the next run."""
    _table_files.cache_clear()


@lru_cache(maxsize=256)
def _table_files(folder: str, mtime_ns: int) -> tuple[str, ...]:
    """The description tables in `folder`, sorted: listed once per version of the folder (its mtime changes when an
    entry is added, removed or renamed; a table edited in place is re-read by `_load_table`'s own key).

    Why cached: every take of a folder asks, and listing and sorting the 4,612-entry Bandai folder for each take
    took 34 ms a take in the parse worker, about three quarters of its time (quadratic in a folder's size)."""
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                stem, dot, suffix = entry.name.lower().rpartition(".")
                hidden = entry.name.startswith(".")  # skipped, as `glob("*")` skipped them before
                if dot and not hidden and suffix in ("csv", "json") and (stem in TABLE_STEMS or
                                                                        stem.endswith("_captions")):
                    found.append(entry.path)
    except OSError:
        return ()
    return tuple(sorted(found))


@lru_cache(maxsize=64)
def _load_table(path: str, mtime_ns: int, size: int, is_csv: bool) -> dict[str, list[str]]:
    """key (file name, stem, id; lower case) -> texts. Cached per file version (one worker reads a folder once)."""
    table: dict[str, list[str]] = {}

    def add(key, texts) -> None:
        if key is None:
            return
        key = str(key).strip().lower()
        for variant in {key, Path(key).name, Path(key).stem}:
            if variant:
                table.setdefault(variant, []).extend(t for t in texts if t)

    try:
        text = _read(Path(path))
        if is_csv:
            rows = list(csv.DictReader(text.splitlines()))
            for row in rows:
                lower = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
                key = next((lower[c] for c in KEY_COLUMNS if lower.get(c)), None)
                add(key, [lower[c] for c in TEXT_KEYS if lower.get(c)])
        else:
            data = json.loads(text)
            if isinstance(data, dict):
                for key, value in data.items():
                    add(key, _texts_of(value))
                    if isinstance(value, dict):
                        add(value.get("file"), _texts_of(value))
            elif isinstance(data, list):
                for item in data:
                    if isinstance(item, dict):
                        add(next((item[c] for c in KEY_COLUMNS if item.get(c)), None), _texts_of(item))
    except (OSError, ValueError, csv.Error):
        return {}
    return table


def _texts_of(value) -> list[str]:
    """Description strings inside a JSON value (string, list, or object with description-like keys)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _texts_of(item)]
    if isinstance(value, dict):
        texts = []
        for key in TEXT_KEYS:
            if key in value:
                texts += _texts_of(value[key])
        for segment in value.get("humanml3d", []) if isinstance(value.get("humanml3d"), list) else []:
            texts += _texts_of(segment)
        return texts
    return []


def _caption_lines(text: str) -> list[str]:
    """Plain text, or HumanML3D caption lines `caption#tokens#start#end` (only the caption is kept)."""
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def _read(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(1 << 20)  # 1 MiB of labels is plenty
    except OSError:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
