"""Retargeting of library takes onto the user's armature.

`mapping` (which bone plays which SMPL-22 joint) and `core` (the numpy transfer) never touch bpy,
so they run and are tested outside Blender; `apply` is the only module that imports bpy. Nothing
is imported here, so importing the package has no side effects and needs no Blender.
"""
