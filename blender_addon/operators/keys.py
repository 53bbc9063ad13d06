"""`mofind.create_client_key`: make this Blender's CurveZMQ key pair and select it in the preferences."""

import bpy

from ..core.keys import create_client_key
from ..core.status import set_status
from ..prefs import ADDON_PACKAGE


class MOFIND_OT_create_client_key(bpy.types.Operator):
    """Create a CurveZMQ key pair for this Blender; copy the public key file into the server's clients folder"""

    bl_idname = "mofind.create_client_key"
    bl_label = "Create Client Key"
    bl_options = {"REGISTER", "INTERNAL"}

    def execute(self, context):
        addon = context.preferences.addons.get(ADDON_PACKAGE)
        if addon is None:
            self.report({"WARNING"}, "Enable the MoFind add-on in the preferences first.")
            return {"CANCELLED"}
        try:
            public, secret = create_client_key()
        except (OSError, ValueError) as exc:
            self.report({"WARNING"}, f"Could not create a client key: {exc}")
            return {"CANCELLED"}
        addon.preferences.client_key_file = str(secret)
        from .. import keyring

        import zmq.auth

        enrolled = keyring.enrol(zmq.auth.load_certificate(str(public))[0].decode("ascii"))
        message = (f"Enrolled {public.name} with the MoFind server on this computer" if enrolled else
                   f"On the server, run: mofind keys allow {public} (or copy it into its allowed-clients folder)")
        set_status("INFO", message)
        self.report({"INFO"}, message)
        return {"FINISHED"}


CLASSES = (MOFIND_OT_create_client_key,)
