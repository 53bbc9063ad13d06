"""Motion features: joints -> the 41 official joint-angle columns -> the model's (T, 29) input.

Modules: ``parts`` (column and body-part tables), ``angles`` (``joint_angles41``), ``normalize``
(``AngleStats``, ``motion_input``), ``mirror`` (left/right augmentation of joints and captions).
Import the module you need; nothing heavy happens at package import.
"""
