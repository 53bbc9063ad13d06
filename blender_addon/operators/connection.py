"""`mofind.ping`: check that the backend answers and show what it serves."""

import bpy

from ..core import connection
from .base import MoFindOperator


class MOFIND_OT_ping(MoFindOperator, bpy.types.Operator):
    """Check that the MoFind backend answers at the address in the preferences"""

    bl_idname = "mofind.ping"
    bl_label = "Test Connection"
    bl_options = {"REGISTER"}

    def execute(self, context):
        return self.run(connection.check)


CLASSES = (MOFIND_OT_ping,)
