"""Imports every model file so that its entrypoints register. Add one line per model file."""
