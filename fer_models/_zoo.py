"""Imports every model file so that its entrypoints register. Add one line per model file."""
from fer_models import ean  # noqa: F401
