"""MoFind: fine-grained text-to-motion search for mocap libraries.

Layers, each importing only the ones before it:
io -> skeleton -> features -> model -> index -> server (+ cli on top).
"""

__version__ = "0.1.0"
