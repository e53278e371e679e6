"""What predict reads: folders, globs and files in a fixed order; photos upright; every N-th video frame."""

from __future__ import annotations

import numpy as np
import pytest
from inference_helpers import photo, write_video

from pipeline.inference.sources import Unreadable, expand, frames, open_video, read_image


def test_expand_folders_globs_files_once_each(tmp_path):
    for rel in ("a/x.jpg", "a/sub/y.PNG", "a/sub/z.mp4", "a/notes.txt", "a/.hidden.jpg", "b/w.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    items = expand([str(tmp_path / "a"), str(tmp_path / "b" / "*.jpg"), str(tmp_path / "a" / "x.jpg"),
                    str(tmp_path / "a" / "notes.txt"), str(tmp_path / "none")])
    got = [(i.path.replace(str(tmp_path) + "/", ""), i.kind, i.rel) for i in items]
    assert got == [("a/sub/y.PNG", "image", "a/sub/y.PNG"), ("a/sub/z.mp4", "video", "a/sub/z.mp4"),
                   ("a/x.jpg", "image", "a/x.jpg"),  # the folder: known suffixes, no hidden files, sorted
                   ("b/w.jpg", "image", "w.jpg"),  # the glob: named below its folder
                   ("a/notes.txt", "image", "notes.txt"),  # a file named on its own is tried whatever its suffix
                   ("none", "missing", "none")]  # x.jpg came with its folder already
    assert items[-1].error == "no such file or folder"


def test_photos_are_read_upright(tmp_path):
    """A phone stores a portrait photo sideways with an EXIF orientation tag: it is read as shown."""
    import cv2
    from PIL import Image, ImageOps

    upright = photo(1, 120, 160, [(60, 70, 60)])  # BGR, 160 high
    sideways = Image.fromarray(cv2.cvtColor(upright, cv2.COLOR_BGR2RGB)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    sideways.save(tmp_path / "portrait.jpg", exif=exif.tobytes(), quality=95)
    got = read_image(tmp_path / "portrait.jpg")
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "portrait.jpg")))
    assert got.shape == (160, 120, 3) and np.abs(got.astype(int) - shown).mean() < 1.0
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(Unreadable, match="empty.jpg: empty file"):
        read_image(tmp_path / "empty.jpg")


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_every_nth_frame_of_a_video(suffix, tmp_path):
    shades = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(7)]
    cap, info = open_video(write_video(tmp_path / f"clip{suffix}", shades, fps=5.0))
    assert (info.fps, info.frames, info.width, info.height) == (5.0, 7, 64, 48)
    got = [(i, None if f is None else int(round(f.mean() / 20))) for i, f in frames(cap, every=3)]
    assert got == [(0, 0), (1, None), (2, None), (3, 3), (4, None), (5, None), (6, 6)]
    cap, _ = open_video(tmp_path / f"clip{suffix}")
    assert [i for i, f in frames(cap, every=3, decode_all=True) if f is not None] == list(range(7))
    (tmp_path / "junk.mov").write_bytes(b"\x00\x01" * 50)
    with pytest.raises(Unreadable, match="junk.mov: not a readable video"):
        open_video(tmp_path / "junk.mov")
