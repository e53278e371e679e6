"""The training machinery behind the ``pretrain``, ``train``, ``distill``, ``evaluate`` and ``predict`` stages.

One module per job: ``recipe`` (settings, seeds, RNG states), ``transforms`` (preprocessing and
augmentation), ``data`` (shards to tensors and the class mapping), ``losses`` and ``optim``
(loss, optimizer, schedule from a recipe), ``checkpoint`` (save / load a trained model),
``loop`` (the epoch loop with model selection, resume and DVCLive logging), ``distill_rounds``
(the iterative teacher-student scheme of EAN), ``pretraining`` (a recipe pretrained on synthetic
faces, and a training that starts from it), ``weights`` (a recipe's starting state dict file, e.g.
DFNet's ImageNet ResNet50: fetched or refused before training).
"""
