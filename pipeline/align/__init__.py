"""The work of stage ``align``: batched MTCNN detection, 5-point similarity alignment, per-dataset
policy, chunked and resumable (``dataset``). ``predict`` reuses :func:`pipeline.align.policy.align_faces`
to align every face of a photograph.
"""
