"""pipeline.evaluation.onnx_export: deterministic opset-17 export with a dynamic batch, ONNX Runtime sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from pipeline.evaluation.onnx_export import export_onnx, onnx_session, run_onnx
from zoo_checks import build


def test_export_is_deterministic_opset_17_with_dynamic_batch(tmp_path: Path) -> None:
    model = build("ean").train()
    a = export_onnx(model, (1, 3, 44, 44), tmp_path / "a.onnx")
    b = export_onnx(build("ean"), (1, 3, 44, 44), tmp_path / "b.onnx")
    assert a.read_bytes() == b.read_bytes()
    assert model.training  # mode restored
    proto = onnx.load(str(a))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == 17
    session = onnx_session(a, threads=2)
    for batch in (1, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 44, 44)).astype(np.float32)
        with torch.no_grad():
            expected = model.eval()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(run_onnx(session, x), expected, atol=1e-4)
    assert list(tmp_path.iterdir()) and all(p.suffix == ".onnx" for p in tmp_path.iterdir())  # no temp left


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="opset 13"):
        export_onnx(build("ean"), (1, 3, 44, 44), tmp_path / "m.onnx", opset=13)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        onnx_session(tmp_path / "missing.onnx")
