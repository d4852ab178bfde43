"""SCRFD's speed work keeps the faces it found: the letterbox to a multiple of 32 instead of a
square (bench/README.md, engine) must find the same faces on real group photos.

The boxes below are what the engine found with the square letterbox (commit 8a3228a, the
default settings), rounded to the pixel.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facegate.detection.base import iou
from facegate.imaging import load_image
from tests.conftest import datasets_dir, package_photo

SQUARE_LETTERBOX_BOXES = {
    "players.jpg": [
        (450, 202, 487, 247), (979, 206, 1019, 255), (231, 226, 268, 269), (573, 175, 612, 226),
        (336, 205, 374, 252), (119, 253, 159, 300), (1156, 256, 1200, 310), (17, 287, 52, 328),
        (324, 417, 363, 468), (170, 420, 212, 471), (657, 440, 698, 494), (1039, 221, 1087, 277),
        (865, 435, 907, 485), (865, 166, 908, 217), (486, 436, 529, 491), (719, 141, 762, 193),
    ],
    "face-api.js/bbt1.jpg@1280x720": [(935, 69, 1029, 196), (199, 120, 290, 245), (442, 129, 533, 255), (686, 123, 768, 242)],
    "Pytorch_Retinaface/test.jpg": [
        (652, 101, 704, 168), (660, 501, 715, 567), (98, 447, 150, 513), (520, 347, 575, 409),
        (742, 4, 786, 54), (143, 327, 204, 396), (596, 218, 653, 295), (697, 393, 747, 459),
        (761, 246, 813, 304), (228, 17, 278, 65), (74, 46, 118, 92), (577, 544, 636, 612),
        (306, 383, 366, 461), (376, 87, 427, 152), (110, 254, 166, 320), (795, 115, 839, 175),
        (836, 148, 887, 221), (381, 224, 439, 286), (124, 97, 165, 154), (296, 101, 337, 162),
        (60, 158, 114, 228),
    ],
    "deepface/selfie-many-people.jpg": [
        (211, 119, 307, 258), (357, 107, 489, 298), (90, 283, 205, 447), (0, 242, 78, 360), (534, 68, 600, 222),
    ],
    "facenet-pytorch/multiface.jpg": [
        (417, 130, 507, 243), (859, 437, 954, 555), (623, 196, 697, 299), (723, 468, 799, 570),
        (555, 47, 632, 161), (227, 245, 307, 356),
    ],
}  # fmt: skip
# Real faces found since, beyond the letterbox's: the selfie-taker, cut by the bottom-right edge,
# scored 0.649 then and 0.653 once the slight shrink of a 640 px photo's margined view became
# bilinear, just over the 0.65 threshold (bench/detection_threshold.py: the selfie's 7 faces).
FACES_FOUND_SINCE = {"deepface/selfie-many-people.jpg": [(483, 279, 600, 601)]}


def photo(name: str) -> np.ndarray:
    if name == "players.jpg":
        return load_image(package_photo(name))
    path, _, size = name.partition("@")
    if not size:
        return load_image(datasets_dir("groups") / path)
    width, height = (int(v) for v in size.split("x"))
    with Image.open(datasets_dir("groups") / path) as im:  # as bench/engine.py resizes it
        return np.ascontiguousarray(np.asarray(im.convert("RGB").resize((width, height), Image.LANCZOS)))


class RecordingSession:
    """The real onnxruntime session, noting the shape of every input it is given."""

    def __init__(self, session) -> None:
        self.session, self.shapes = session, []

    def __getattr__(self, name):
        return getattr(self.session, name)

    def run(self, outputs, feeds):
        self.shapes.append(tuple(next(iter(feeds.values())).shape))
        return self.session.run(outputs, feeds)


@pytest.mark.parametrize("name", list(SQUARE_LETTERBOX_BOXES))
def test_the_same_faces_are_found_as_with_the_square_letterbox(arcface_engine, name):
    before = np.array(SQUARE_LETTERBOX_BOXES[name], dtype=np.float32)
    since = np.array(FACES_FOUND_SINCE.get(name, []), dtype=np.float32).reshape(-1, 4)
    found = arcface_engine.detect(photo(name))
    assert len(found) == len(before) + len(since), [d.box.round() for d in found]
    now = np.stack([d.box for d in found])
    for box in [*before, *since]:  # one to one: every face has its own match now, IoU > 0.5
        overlaps = iou(box, now)
        best = int(overlaps.argmax())
        assert overlaps[best] > 0.5, (box, now[best])
        now = np.delete(now, best, axis=0)


def test_a_1280x720_photo_runs_the_network_on_inputs_cut_to_multiples_of_32():
    from facegate.detection.scrfd import ScrfdDetector

    detector = ScrfdDetector(intra_threads=1)
    recorder = RecordingSession(detector.session)
    detector.session = recorder
    found = detector.detect(photo("face-api.js/bbt1.jpg@1280x720"))
    # The photo with its 5% grey margin is 1408x792: the 640 pass sees 640x360 (padded to 384),
    # the small-face pass 1280x720 (padded to 736), where a square letterbox ran 640x640 and 1280x1280.
    assert recorder.shapes == [(1, 3, 384, 640), (1, 3, 736, 1280)]
    assert len(found) == 4
    assert {tuple(d.extras["input_size"]) for d in found} <= {(640, 384), (1280, 736)}
