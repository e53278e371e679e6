"""Counts of the generated raw sample the ``generated_raw`` fixture writes (tests/conftest.py), in a
module of their own: test modules import them from here, never from a ``conftest`` (a package's own
conftest.py, e.g. tests/inference's, would shadow that name)."""

#: per-dataset counts of the ``generated_raw`` fixture: small, yet several subjects per dataset
GENERATED_RAW_PER_CLASS = {"fer2013": 3, "ckplus": 1, "jaffe": 1, "rafdb": 3, "kdef": 4}
