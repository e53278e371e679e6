"""MTCNN finds the faces of the synthetic sample of every dataset (detection rate >= 95%).

Each dataset is ingested (in process) from the session's ``generated_raw`` sample and aligned with
its own ``align.<dataset>`` params; pre-cropped datasets (FER2013, RAF-DB) are run with
``verify: true`` so MTCNN looks at them too. The rate is the summary's ``detection_rate``: faces
found / images MTCNN ran on, first pass plus the ``redetect`` fallback where configured.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from pipeline.core import params
from pipeline.align.chunks import align_rows
from pipeline.align.settings import AlignSettings

DATASETS = ("fer2013", "ckplus", "jaffe", "rafdb", "kdef")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("dataset", DATASETS)
def test_detection_rate_on_generated_sample(dataset, generated_raw, tmp_path, project_root):
    from pipeline.ingest import ingest_dataset

    p = params.load(project_root / "params.yaml")
    ingest_dataset(dataset, generated_raw / dataset, tmp_path / dataset, params.section("ingest", dataset, params=p),
                   progress=False)
    cfg = params.section("align", dataset, params=p)
    if cfg.get("policy") == "precropped":
        cfg["verify"] = True
    rows = pq.read_table(tmp_path / dataset / "manifest.parquet")
    crops, outcomes, counts = align_rows(rows, AlignSettings.from_dict(cfg, where=f"align.{dataset}"))
    ran = sum(c.get("mtcnn_ran", 0) for c in counts.values())
    found = sum(c.get("faces_found", 0) for c in counts.values())
    assert ran == len(rows) > 0
    print(f"{dataset}: MTCNN found faces in {found}/{ran} images ({found / ran:.1%})")
    missed = [r["image_id"] for r in outcomes.to_pylist() if not r["n_faces"]]
    assert found / ran >= 0.95, f"{dataset}: faces found in {found}/{ran} images; missed {missed[:10]}"
