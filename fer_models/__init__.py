"""fer_models: the attention networks of the five FER papers, and their reusable layers.

Stand-alone: depends on torch/torchvision only, never on ``pipeline``::

    import fer_models
    model = fer_models.create_model("ean", num_classes=7)
    fer_models.list_models()
"""

from fer_models.registry import (
    create_model,
    list_models,
    model_default_cfg,
    model_entrypoint,
    model_variants,
    register_model,
)

# importing the model files registers them
from fer_models import _zoo  # noqa: F401,E402

__all__ = ["create_model", "list_models", "model_default_cfg", "model_entrypoint", "model_variants", "register_model"]
