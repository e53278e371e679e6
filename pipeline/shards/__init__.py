"""The processed-shard format: ``format`` (schema, Hugging Face metadata, file names, the one
:class:`~pipeline.shards.format.ShardWriter`) and ``dataset`` (the one PyTorch dataset over shards,
:class:`~pipeline.shards.dataset.ShardDataset`, which training, evaluation and cv read through).
"""
