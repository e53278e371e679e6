"""The work of stage ``shard``: subject-independent ``splits``, ``balance`` of the training part,
offline ``augment`` (albumentations), the dataset ``card``, and ``build``, which streams the aligned
crops through them into Parquet shards (written by :mod:`pipeline.shards`).
"""
