"""`extract_once` from several processes at once: each sees the whole folder, extracted once."""

from __future__ import annotations

import multiprocessing
import tarfile
from pathlib import Path

from mofind.train.bandai import extract_once

FILES = 1500


def _archive(folder: Path) -> Path:
    source = folder / "src" / "takes" / "data"
    source.mkdir(parents=True)
    for i in range(FILES):
        (source / f"take_{i:04d}.bvh").write_text(f"HIERARCHY {i}\n" * 20)
    archive = folder / "takes.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(source.parent, arcname="takes")
    return archive


def _extract_and_read(archive: str, target: str, barrier, results) -> None:
    barrier.wait()
    folder = extract_once(Path(archive), Path(target))
    missing = []
    for _ in range(3):  # read every take, as an indexer would right after
        for i in range(FILES):
            path = folder / "takes" / "data" / f"take_{i:04d}.bvh"
            try:
                if path.read_text() != f"HIERARCHY {i}\n" * 20:
                    missing.append(i)
            except OSError:
                missing.append(i)
    results.put(len(missing))


def test_concurrent_extractions_never_pull_the_folder_from_under_a_reader(tmp_path):
    archive = _archive(tmp_path)
    target = tmp_path / "cache" / "takes"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_extract_and_read, args=(str(archive), str(target), barrier, results))
               for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert [results.get(timeout=5) for _ in workers] == [0, 0, 0]
    assert len(list((target / "takes" / "data").iterdir())) == FILES
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".bandai-")]  # no staging left behind
