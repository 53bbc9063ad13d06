"""Build the MoFind Blender extension: dist/mofind-<version>.zip with pyzmq wheels for every platform.

    python build_addon.py [--offline] [--blender-ext PATH]

1. Download the pyzmq wheel the backend pins (requirements.lock) for each Blender platform and
   for Python 3.11 (Blender 4.2-5.0) and 3.13 (Blender 5.1+), with
   `pip download --only-binary=:all: --platform ... --python-version ...`, cached in .cache/wheels.
2. Stage blender_addon/ plus wheels/ in build/mofind and write the manifest's `wheels = [...]`
   (the source manifest is updated too, so the repository shows what the zip bundles). Files the
   add-on shares with the backend (`VENDORED`, e.g. the bone-alias table) are copied in from
   their one source; in the repository the add-on's path is a symbolic link to it.
3. Validate and build with Blender's own extension tool (blender_ext.py from a bpy wheel).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent
ADDON = REPO / "blender_addon"
MANIFEST = "blender_manifest.toml"
WHEEL_CACHE = REPO / ".cache" / "wheels"
STAGE = REPO / "build" / "mofind"
DIST = REPO / "dist"

#: Blender platform -> pip platform tags to accept, best first (Blender 4.2+ needs glibc 2.28, macOS 11).
#: These are the platforms blender.org ships builds for; Linux on ARM is not one of them.
PLATFORMS = {
    "windows-x64": ("win_amd64",),
    "windows-arm64": ("win_arm64",),
    "macos-arm64": ("macosx_11_0_arm64", "macosx_10_15_universal2"),
    "macos-x64": ("macosx_10_15_x86_64", "macosx_10_15_universal2"),
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
}
#: Python of Blender 4.2-5.0 and of Blender 5.1+.
PYTHONS = ("3.11", "3.13")
BUNDLED = ("pyzmq",)
#: Backend file -> its place in the add-on (one source of truth; the zip gets a real copy).
VENDORED = {
    REPO / "backend" / "mofind" / "skeleton" / "bone_aliases.json": "retarget/bone_aliases.json",
}
BLENDER_EXT_GLOB = ".venv-bpy*/lib/python*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def pinned_requirements(lock: Path = REPO / "requirements.lock") -> list[str]:
    """`name==version` for each bundled package, as the backend pins it (one version on both sides)."""
    pins = {}
    for line in lock.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[name.lower()] = version
    missing = [name for name in BUNDLED if name not in pins]
    if missing:
        raise BuildError(f"{lock} pins no version of {', '.join(missing)}")
    return [f"{name}=={pins[name]}" for name in BUNDLED]


def download_wheels(requirements: list[str], *, offline: bool = False) -> list[Path]:
    """One wheel per requirement, platform and Python (cached); duplicates (universal2) are kept once."""
    wheels: dict[str, Path] = {}
    for requirement in requirements:
        for platform, tags in PLATFORMS.items():
            for python in PYTHONS:
                target = WHEEL_CACHE / requirement / f"{platform}-py{python}"
                found = sorted(target.glob("*.whl"))
                if not found:
                    if offline:
                        raise BuildError(f"no cached wheel for {requirement} on {platform}/Python {python} "
                                         f"in {target}; run once without --offline")
                    found = _pip_download(requirement, tags, python, target)
                for wheel in found:
                    wheels.setdefault(wheel.name, wheel)
    return [wheels[name] for name in sorted(wheels)]


def _pip_download(requirement: str, tags: tuple[str, ...], python: str, target: Path) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    platform_args = [arg for tag in tags for arg in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--only-binary=:all:",
               *platform_args, "--python-version", python, "--dest", str(target), "--quiet"]
    print(f"  pip download {requirement} for {tags[0]} / Python {python}")
    done = subprocess.run(command, capture_output=True, text=True)
    found = sorted(target.glob("*.whl"))
    if done.returncode != 0 or not found:
        raise BuildError(f"pip could not download {requirement} for {tags[0]} / Python {python}:\n"
                         + done.stderr.strip())
    return found


def wheels_block(wheel_names: list[str]) -> str:
    lines = "".join(f'  "./wheels/{name}",\n' for name in wheel_names)
    return f"wheels = [\n{lines}]"


def with_wheels(manifest_text: str, wheel_names: list[str]) -> str:
    """The manifest text with its `wheels = [...]` and `platforms = [...]` entries filled (comments and order
    kept): the platforms are exactly those the wheels cover, so Blender offers the zip nowhere pyzmq is missing."""
    pattern = re.compile(r"^wheels\s*=\s*\[.*?\]", re.MULTILINE | re.DOTALL)
    if not pattern.search(manifest_text):
        raise BuildError(f"{MANIFEST} has no `wheels = [...]` entry to fill")
    text = pattern.sub(wheels_block(wheel_names), manifest_text, count=1)
    platforms = "platforms = [" + ", ".join(f'"{name}"' for name in PLATFORMS) + "]"
    existing = re.compile(r"^platforms\s*=\s*\[.*?\]", re.MULTILINE | re.DOTALL)
    if existing.search(text):
        return existing.sub(platforms, text, count=1)
    return re.sub(r"^(blender_version_min\s*=.*)$", lambda m: m.group(1) + "\n" + platforms, text, count=1,
                  flags=re.MULTILINE)


def stage(wheels: list[Path]) -> Path:
    """build/mofind = blender_addon/ + wheels/ + the manifest listing them."""
    if STAGE.exists():
        shutil.rmtree(STAGE)
    shutil.copytree(ADDON, STAGE, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "wheels"))
    for source, relative in VENDORED.items():
        target = STAGE / relative
        target.unlink(missing_ok=True)
        shutil.copyfile(source, target)
    (STAGE / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, STAGE / "wheels" / wheel.name)
    names = [wheel.name for wheel in wheels]
    source_manifest = ADDON / MANIFEST
    text = with_wheels(source_manifest.read_text(), names)
    if text != source_manifest.read_text():
        source_manifest.write_text(text)
        print(f"  updated the wheels list in {source_manifest.relative_to(REPO)}")
    (STAGE / MANIFEST).write_text(text)
    return STAGE


def find_blender_ext(explicit: str | None) -> Path:
    """Blender's extension tool from a bpy wheel (the newest Blender found), or the path given."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise BuildError(f"--blender-ext {path} does not exist")
        return path
    candidates = sorted(REPO.glob(BLENDER_EXT_GLOB), key=lambda p: _version_key(p.parents[4].name))
    if not candidates:
        raise BuildError("Blender's extension tool was not found: create a bpy venv first (`make venv-bpy42`) "
                         "or pass --blender-ext .../bl_pkg/cli/blender_ext.py")
    return candidates[-1]


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def blender_ext(tool: Path, *args: str) -> str:
    """Run blender_ext.py (plain Python 3.11+ is enough: it needs no bpy)."""
    done = subprocess.run([sys.executable, str(tool), *args], capture_output=True, text=True)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise BuildError(f"blender_ext {args[0]} failed:\n{output}")
    return output


def build(*, offline: bool = False, blender_ext_path: str | None = None) -> Path:
    manifest = tomllib.loads((ADDON / MANIFEST).read_text())
    version = manifest["version"]
    requirements = pinned_requirements()
    print(f"MoFind {version}: bundling {', '.join(requirements)} for {len(PLATFORMS)} platforms x "
          f"Python {' and '.join(PYTHONS)}")
    wheels = download_wheels(requirements, offline=offline)
    print(f"  {len(wheels)} wheels: " + ", ".join(wheel.name for wheel in wheels))
    staged = stage(wheels)
    tool = find_blender_ext(blender_ext_path)
    print(f"  validating with {tool.relative_to(REPO) if tool.is_relative_to(REPO) else tool}")
    blender_ext(tool, "validate", str(staged))
    DIST.mkdir(exist_ok=True)
    output = DIST / f"{manifest['id']}-{version}.zip"
    output.unlink(missing_ok=True)
    blender_ext(tool, "build", "--source-dir", str(staged), "--output-filepath", str(output))
    print(f"built {output.relative_to(REPO)} ({output.stat().st_size / 1e6:.1f} MB)")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="use only wheels already in .cache/wheels")
    parser.add_argument("--blender-ext", help="path to Blender's bl_pkg/cli/blender_ext.py")
    args = parser.parse_args(argv)
    try:
        build(offline=args.offline, blender_ext_path=args.blender_ext)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
