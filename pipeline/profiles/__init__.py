"""The work of ``fer-pipeline profile``: named overlays ``profiles/<name>.yaml`` applied to
``params.yaml`` (``overlay``). No stage runs this code: DVC sees a profile only through the params
it writes.
"""

from pipeline.profiles.overlay import ProfileError, available, compose, switch

__all__ = ["ProfileError", "available", "compose", "switch"]
