"""Add-on preferences: where the backend is and how patient to be with it.

Keyed by `__package__` (e.g. ``bl_ext.user_default.mofind``), never a hard-coded name, so the
add-on works from any extension repository.
"""

from dataclasses import dataclass

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from .client import DEFAULT_ADDRESS

ADDON_PACKAGE = __package__


@dataclass(frozen=True)
class ClientSettings:
    """What the service needs to build its client; comes from the preferences or defaults."""

    address: str = DEFAULT_ADDRESS
    timeout_s: float = 5.0
    retries: int = 2
    server_key: str = ""
    client_key_file: str = ""


def _settings_changed(prefs, context) -> None:
    from . import service  # the service module imports this one; import late to keep layers one-way

    running = service.active()
    if running is not None:
        running.configure(prefs.settings())


class MOFIND_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    address: StringProperty(
        name="Backend address", default=DEFAULT_ADDRESS, update=_settings_changed,
        description="ZeroMQ endpoint of `mofind serve` (tcp://host:port); keep it on 127.0.0.1 unless you use a key",
    )
    timeout: FloatProperty(
        name="Timeout", default=5.0, min=0.1, max=600.0, unit="TIME_ABSOLUTE", update=_settings_changed,
        description="Seconds to wait for one reply before reconnecting and trying again",
    )
    retries: IntProperty(
        name="Retries", default=2, min=0, max=10, update=_settings_changed,
        description="How many times a request is sent again before MoFind gives up on the backend",
    )
    server_key: StringProperty(
        name="Server key", default="", update=_settings_changed,
        description="The backend's CurveZMQ public key (40 characters, `mofind keys` prints it). Leave empty for a "
                    "server on this computer: MoFind finds its key and enrols this Blender by itself",
    )

    client_key_file: StringProperty(
        name="Client key", default="", subtype="FILE_PATH", update=_settings_changed,
        description="This Blender's CurveZMQ secret certificate (.key_secret; made automatically when empty). A "
                    "remote server must allow its public half: `mofind keys allow FILE.key` there",
    )

    def settings(self) -> ClientSettings:
        return ClientSettings(self.address.strip(), float(self.timeout), int(self.retries), self.server_key.strip(),
                              bpy.path.abspath(self.client_key_file.strip()) if self.client_key_file.strip() else "")

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "address")
        layout.prop(self, "timeout")
        layout.prop(self, "retries")
        layout.prop(self, "server_key")
        row = layout.row(align=True)
        row.prop(self, "client_key_file")
        row.operator("mofind.create_client_key", text="", icon="ADD")
        from .dependencies import numpy_available, numpy_message_lines
        from .ui.text import draw_wrapped

        layout.use_property_split = False
        layout.operator("mofind.ping", text="Test Connection", icon="LINKED")
        session = getattr(context.window_manager, "mofind", None)
        if session is not None and session.status:
            draw_wrapped(layout, context, session.status, icon=_STATUS_ICONS.get(session.status_level, "INFO"))
        else:
            layout.label(text="Not checked yet", icon="QUESTION")
        if not numpy_available():
            box = layout.box()
            box.alert = True
            draw_wrapped(box, context, numpy_message_lines(), icon="ERROR", reserved_units=0.6)


_STATUS_ICONS = {"INFO": "INFO", "OK": "CHECKMARK", "WARNING": "ERROR", "ERROR": "CANCEL", "BUSY": "SORTTIME"}


def status_icon(level: str) -> str:
    """The icon the panels and the preferences show beside a status line."""
    return _STATUS_ICONS.get(level, "INFO")


def get_settings(context) -> ClientSettings:
    """The preferences' settings, or the defaults when the add-on is not enabled through Blender."""
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    if addon is None or addon.preferences is None:
        return ClientSettings()
    return addon.preferences.settings()


CLASSES = (MOFIND_AP_preferences,)
