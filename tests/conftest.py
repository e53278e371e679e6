"""Shared fixtures. Tests run on CPU with few threads so that the suite behaves on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REALDATA = PROJECT_ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def realdata() -> Path:
    """``../shared/realdata``; tests that need it are skipped where it is absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata not present")
    return REALDATA


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect server and database for the test session; yields its API URL.

    Not autouse: request it (``pytestmark = pytest.mark.usefixtures("prefect_harness")``) in
    modules that run Prefect flows. Generous start-up timeout: 2 shared cores can be busy.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from pipeline import orchestration  # noqa: F401  (Prefect env defaults before the server starts)

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()
