"""Shared pytest fixtures: locating ../shared and skipping cleanly when it is absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "backend"))
sys.path.insert(0, str(REPO / "tests"))

from mofind.paths import shared_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data folder; tests that use it skip with a reason when it is absent."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared (or $MOFIND_SHARED) is absent: real mocap and reference data unavailable")
    return path


@pytest.fixture(scope="session")
def reference_dir(shared: Path) -> Path:
    path = shared / "reference" / "motioncolbert"
    if not path.is_dir():
        pytest.skip(f"{path} is absent: official reference vectors unavailable")
    return path


@pytest.fixture(scope="session")
def bvh_samples(shared: Path) -> list[Path]:
    files = sorted((shared / "data" / "bvh-samples").glob("*.bvh"))
    if not files:
        pytest.skip("no BVH files in shared/data/bvh-samples")
    return files
