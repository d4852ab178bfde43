"""dlib's HOG frontal face detector: the commercially usable detection backend.

It gives no landmarks; the dlib recognizer finds its own 5 points inside the box, and
:class:`~facegate.engine.FaceEngine` asks the 5-point predictor for ArcFace's points when an
ArcFace model is paired with this detector.
"""

from __future__ import annotations

import threading

import numpy as np

from facegate.detection.base import Detection, nms


class DlibHogDetector:
    name = "dlib"
    model_keys: tuple[str, ...] = ()

    def __init__(self, upsample: int = 1, min_face_size: int = 20, score_threshold: float = 0.0) -> None:
        """``score_threshold`` is an SVM margin, not a probability: 0 is dlib's own default (the
        faces of the test photos score 0.5 to 2.4); see ``FACEGATE_DET_DLIB_SCORE_THRESHOLD``."""
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.min_face_size = min_face_size
        self.score_threshold = score_threshold
        self._lock = threading.Lock()  # dlib's detector object is not re-entrant

    def detect(self, image: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        threshold = self.score_threshold if score_threshold is None else score_threshold
        # Tiny images (ORL, 92x112) need more upsampling: HOG's window is 80x80.
        upsample = self.upsample + (1 if max(image.shape[:2]) < 200 else 0)
        with self._lock:
            rects, scores, _ = self._detector.run(np.ascontiguousarray(image), upsample, threshold)
        h, w = image.shape[:2]
        found = []
        for rect, score in zip(rects, scores):
            box = np.array(
                [max(rect.left(), 0), max(rect.top(), 0), min(rect.right(), w), min(rect.bottom(), h)],
                dtype=np.float32,
            )
            det = Detection(box=box, score=float(score), landmarks=None, detector=self.name)
            if det.size >= self.min_face_size:
                found.append(det)
        if len(found) > 1:
            keep = nms(np.stack([d.box for d in found]), np.array([d.score for d in found]), 0.4)
            found = [found[i] for i in keep]
        return sorted(found, key=lambda d: -d.score)
