"""Pure helpers behind the readable panel: measured wrapping, short unique take names, the numpy fix text."""

from __future__ import annotations

import importlib

import pytest


@pytest.fixture(scope="module")
def wrap_mod(addon_pkg):
    return importlib.import_module("mofind_addon.ui.wrap")


@pytest.fixture(scope="module")
def names_mod(addon_pkg):
    return importlib.import_module("mofind_addon.core.names")


@pytest.fixture(scope="module")
def deps_mod(addon_pkg):
    return importlib.import_module("mofind_addon.dependencies")


def chars(text: str) -> float:
    return 7.0 * len(text)


def test_wrap_keeps_every_word_and_fits_the_width(wrap_mod):
    text = "No reply from the MoFind backend at tcp://127.0.0.1:5555 to 'search' after 3 tries of 5 s."
    lines = wrap_mod.wrap(text, 140, chars)
    assert " ".join(lines) == text and len(lines) > 2
    assert all(chars(line) <= 140 for line in lines)


def test_wrap_breaks_long_names_at_separators_then_characters(wrap_mod):
    assert wrap_mod.wrap("dataset-2_raise-up-left-hand_elderly_001", 150, chars) == [
        "dataset-2_raise-up-", "left-hand_elderly_001"]
    assert wrap_mod.wrap("abcdefghij", 35, chars) == ["abcde", "fghij"]
    assert wrap_mod.wrap("first\nsecond", 500, chars) == ["first", "second"]


def test_join_fitting_never_cuts_a_fact(wrap_mod):
    assert wrap_mod.join_fitting(["score 0.75", "", "9.1 s", "frames 129–273"], 130, chars) == [
        "score 0.75 · 9.1 s", "frames 129–273"]


def test_short_names_are_the_shortest_unique_suffix(names_mod):
    sources = ["/lib/a/walk.bvh", "/lib/b/walk.bvh", "C:\\lib\\b\\run.fbx", "/lib/b/walk.bvh", ""]
    assert names_mod.short_names(sources, ["", "", "", "", "clip5"]) == ["a/walk", "b/walk", "run", "b/walk", "clip5"]
    assert names_mod.short_names(["/x/y/take.bvh", "/z/y/take.bvh"]) == ["x/y/take", "z/y/take"]


@pytest.mark.parametrize("os_release, command", [
    ('ID=debian\n', "sudo apt install python3-numpy"),
    ('ID=linuxmint\nID_LIKE="ubuntu debian"\n', "sudo apt install python3-numpy"),
    ('ID=fedora\n', "sudo dnf install python3-numpy"),
    ('ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n', "sudo zypper install python3-numpy"),
    ('ID=arch\n', "sudo pacman -S python-numpy"),
])
def test_numpy_fix_names_this_linux_distributions_command(deps_mod, tmp_path, os_release, command):
    release = tmp_path / "os-release"
    release.write_text(os_release)
    message = deps_mod.numpy_message("linux", release)
    assert f"`{command}`" in message and "blender.org" in message and "search works" in message
    assert f"\n{command}\n" in deps_mod.numpy_message_lines("linux", release)  # a line of its own in panels


def test_numpy_fix_elsewhere(deps_mod, tmp_path):
    assert "python3-numpy" in deps_mod.numpy_fix("linux", tmp_path / "missing")
    assert "reinstall Blender from blender.org" in deps_mod.numpy_fix("win32")
