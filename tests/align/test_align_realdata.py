"""Every face a person sees in the real photographs of ``../shared/realdata/photos`` is found and aligned.

Skipped where the folder is absent; the photos are read in place, never copied into the repo.
"""

from __future__ import annotations

import pytest

from pipeline.core import params
from pipeline.align.image_io import decode_rgb
from pipeline.align.policy import align_faces
from pipeline.align.settings import AlignSettings

pytestmark = pytest.mark.realdata

EXPECTED_FACES = {"multiface.jpg": 6, "angelina_jolie.jpg": 1, "kate_siegel.jpg": 1}


@pytest.mark.parametrize("name", sorted(EXPECTED_FACES))
def test_every_face_in_the_photo_is_found(name, realdata, project_root):
    import torch

    torch.set_num_threads(1)
    path = realdata / "photos" / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    s = AlignSettings.from_dict(params.section("align", "photos", path=project_root / "params.yaml"))
    faces = align_faces(decode_rgb(path.read_bytes()), s)
    assert len(faces) == EXPECTED_FACES[name]
    for crop, outcome in faces:
        assert outcome.prob > 0.95 and crop.shape == (s.px, s.px, 3)
    boxes = [o.box for _, o in faces]  # distinct people, not one face twice
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
