"""Imports every model file so that its entrypoints register. Add one line per model file."""
from fer_models import ean  # noqa: F401
from fer_models import resatt  # noqa: F401
from fer_models import dfnet  # noqa: F401
from fer_models import erfnet_att  # noqa: F401
from fer_models import dnn_cbam  # noqa: F401
from fer_models import onet_probe  # noqa: F401  (a teacher, not a paper model)
