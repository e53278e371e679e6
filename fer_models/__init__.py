"""fer_models: the attention networks of the five FER papers, and their reusable layers.

Plus ``onet_probe``, not a paper model: MTCNN ONet's pretrained first convolutions + a linear
head, the teacher of EAN on small real data (its weights come from ``facenet-pytorch``).

Stand-alone: depends on torch/torchvision only (and facenet-pytorch for ``onet_probe``'s
pretrained weights), never on ``pipeline``::

    import fer_models
    model = fer_models.create_model("ean", num_classes=7)
    fer_models.list_models("ean*")                               # fnmatch filter, as timm
    dfnet = fer_models.create_model("dfnet", pretrained=True)     # ImageNet ResNet50 backbone (torch's cache)
    dfnet = fer_models.create_model("dfnet", pretrained="resnet50.pth")   # a local state dict
"""

from fer_models.pretrained import PretrainedUnavailable
from fer_models.registry import (
    create_model,
    list_models,
    model_default_cfg,
    model_entrypoint,
    model_variants,
    pretrained_cfg,
    register_model,
)

# importing the model files registers them
from fer_models import _zoo  # noqa: F401,E402

__all__ = ["PretrainedUnavailable", "create_model", "list_models", "model_default_cfg", "model_entrypoint",
           "model_variants", "pretrained_cfg", "register_model"]
