"""`make bench`: run every benchmark module and write one markdown table per stage.

Each `bench/bench_<stage>.py` exposes `run() -> list[dict]` (rows of one table). Results go to
`bench/results/<stage>.md` (committed: they are the measured record) and are printed. Speed targets live in
the benchmarks, never in unit tests: a row with `"ok": False` is a missed target, and `make bench` exits
non-zero when any target is missed or any stage fails (after running every stage).
The add-on benchmark needs Blender's Python, so it runs in the bpy virtual environment as a subprocess.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BACKEND_STAGES = ["io", "model", "index", "quality", "describe", "feet", "cluster"]
BPY_PYTHON = ROOT / ".venv-bpy42" / "bin" / "python"


def print_stage(run) -> int:
    """`python -m bench.<stage>` on its own: run the stage and print its table; 1 when a target was missed."""
    rows = run()
    print(markdown_table(rows) + _missed_lines(rows))
    return 1 if missed(rows) else 0


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)\n"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def missed(rows: list[dict]) -> list[dict]:
    """Rows whose target was missed (`ok` is exactly False; "" means the row has no target)."""
    return [row for row in rows if row.get("ok") is False]


def _missed_lines(rows: list[dict]) -> str:
    """One **MISSED** line per row whose target was missed, naming it (stages name rows by `measure` or `stage`)."""
    return "".join(f"\n**MISSED**: {row.get('measure') or row.get('stage')} "
                   f"({row.get('setting') or row.get('backend') or row.get('windows', '')}): target "
                   f"{row.get('target') or row.get('target ms', '')}\n" for row in missed(rows))


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _write(stage: str, text: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stage}.md").write_text(text)
    print(f"## {stage}\n\n{text}", flush=True)


def main() -> int:
    sys.path.insert(0, str(ROOT / "backend"))
    failures = 0
    for stage in BACKEND_STAGES:
        started = time.perf_counter()
        try:
            rows = importlib.import_module(f"bench.bench_{stage}").run()
        except Exception as exc:  # one broken stage must not hide the others' numbers
            failures += 1
            _write(stage, f"FAILED: {type(exc).__name__}: {exc}\n")
            continue
        misses = missed(rows)
        failures += bool(misses)
        _write(stage, markdown_table(rows) + _missed_lines(rows) + f"\n_{time.perf_counter() - started:.0f} s_\n")
    if BPY_PYTHON.exists():
        proc = subprocess.run([str(BPY_PYTHON), "-m", "bench.bench_addon"], cwd=ROOT, capture_output=True, text=True)
        _write("addon", proc.stdout if proc.returncode == 0 else f"FAILED:\n{proc.stderr[-2000:]}\n")
        failures += proc.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
