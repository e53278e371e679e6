"""Faces: batched MTCNN detection, 5-point similarity alignment, per-dataset policy.

The ``align`` stage (``pipeline/align.py``) runs these over a manifest in chunks; ``predict``
reuses :func:`pipeline.faces.policy.align_faces` to align every face of a photograph.
"""
