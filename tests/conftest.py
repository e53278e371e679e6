"""Shared fixtures. Tests run on CPU with few threads so that the suite behaves on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from generated_raw import GENERATED_RAW_PER_CLASS

os.environ.setdefault("OMP_NUM_THREADS", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REALDATA = PROJECT_ROOT.parent / "shared" / "realdata"


@pytest.fixture(scope="session", autouse=True)
def _prefect_logs_to_the_session_streams():
    """Set up Prefect's logging before any test runs. Its console handler keeps the stream it was
    created with, and a test that first runs a flow under ``capsys`` would leave every later flow
    logging to that test's closed capture ("I/O operation on closed file")."""
    from prefect.logging.configuration import setup_logging

    setup_logging()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def realdata() -> Path:
    """``../shared/realdata``; tests that need it are skipped where it is absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata not present")
    return REALDATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread while a module runs (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    the suite shares 2 cores, and small models run no faster on two."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect server and database for the test session; yields its API URL.

    Not autouse: request it (``pytestmark = pytest.mark.usefixtures("prefect_harness")``) in
    modules that run Prefect flows. Generous start-up timeout: 2 shared cores can be busy.
    """
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from pipeline.runner import flows  # noqa: F401  (Prefect env defaults before the server starts)

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def generated_raw(tmp_path_factory) -> Path:
    """A small synthetic sample of all five datasets in native layouts (seed 0), written once per session.

    Returns the raw root: ``<root>/fer2013/fer2013.csv``, ``<root>/ckplus/cohn-kanade-images/...``,
    ``<root>/jaffe/*.tiff``, ``<root>/rafdb/basic/...``... see :mod:`pipeline.synthetic.layouts`
    (counts: :data:`GENERATED_RAW_PER_CLASS`). Treat it as read-only: it is shared by all tests.
    """
    from pipeline.synthetic import write_sample

    root = tmp_path_factory.mktemp("generated_raw")
    write_sample(root, per_class=GENERATED_RAW_PER_CLASS, seed=0, jobs=1)  # no fork after torch loaded
    return root


@pytest.fixture
def torch_cache(tmp_path, monkeypatch) -> Path:
    """An empty torch cache (``$TORCH_HOME``); returns its ``hub/checkpoints`` folder."""
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch-home" / "hub" / "checkpoints"


@pytest.fixture
def offline(monkeypatch):
    """torchvision's weights API cannot reach the network (nothing is ever downloaded by a test)."""
    import urllib.error

    import torchvision

    def refuse(url, *args, **kwargs):
        raise urllib.error.URLError("no network (test)")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)
