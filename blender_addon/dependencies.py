"""What the add-on needs from Blender's Python and what to tell the user when it is missing.

Blender from blender.org bundles numpy; Linux distributions' Blender packages use the system
Python and often lack it. Searching needs no numpy; Apply and Preview (the retarget maths) do.
The fix depends on where Blender came from, so the message names the command for this system.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

_PACKAGE_MANAGERS = (  # /etc/os-release ID or ID_LIKE word -> command that installs numpy for the system Python
    ("debian", "sudo apt install python3-numpy"),
    ("ubuntu", "sudo apt install python3-numpy"),
    ("fedora", "sudo dnf install python3-numpy"),
    ("rhel", "sudo dnf install python3-numpy"),
    ("suse", "sudo zypper install python3-numpy"),
    ("arch", "sudo pacman -S python-numpy"),
)


@functools.cache
def numpy_available() -> bool:
    """Whether numpy can be imported (asked once: panels call this at every redraw; a fix needs a restart)."""
    try:
        return importlib.util.find_spec("numpy") is not None
    except (ImportError, ValueError):
        return False


def numpy_fix(platform: str = sys.platform, os_release: Path = Path("/etc/os-release")) -> str:
    """One sentence: how to get numpy into this Blender."""
    official = "or use Blender from blender.org, which includes numpy"
    if platform.startswith("linux"):
        command = _install_command(os_release)
        if command:
            return f"Install it with `{command}` and restart Blender, {official}."
        return f"Install numpy for the Python this Blender uses (your distribution's python3-numpy package), {official}."
    return "This Blender's bundled Python has lost numpy: reinstall Blender from blender.org."


def numpy_message(platform: str = sys.platform, os_release: Path = Path("/etc/os-release")) -> str:
    return ("This Blender has no numpy, which MoFind needs to apply and preview clips (search works without it). "
            + numpy_fix(platform, os_release))


def numpy_message_lines(platform: str = sys.platform, os_release: Path = Path("/etc/os-release")) -> str:
    """The message for a panel: the install command on a line of its own, so it is never split."""
    return numpy_message(platform, os_release).replace(" `", "\n").replace("` ", "\n")


def _install_command(os_release: Path) -> str:
    try:
        text = os_release.read_text(errors="replace")
    except OSError:
        return ""
    words: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            words.extend(value.strip().strip('"').lower().split())
    for word in words:
        for family, command in _PACKAGE_MANAGERS:
            if family in word:
                return command
    return ""
