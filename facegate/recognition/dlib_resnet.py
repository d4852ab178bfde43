"""dlib ResNet face descriptor (128-d): the commercially usable recognition model."""

from __future__ import annotations

import threading

import numpy as np

from facegate.detection.base import Detection
from facegate.models import MODELS, verified_path
from facegate.recognition.base import Template, l2_normalise


class DlibResNetRecognizer:
    """dlib's own pipeline: 5-point shape inside the box, a 150x150 face chip, the ResNet.

    dlib's distances are Euclidean on unnormalised 128-d vectors (threshold 0.6); FaceGate
    L2-normalises them so every model is scored by cosine similarity, higher = more alike.
    """

    model_id = "dlib"
    model_key = "dlib_resnet"
    dimension = 128
    chip_size = 150
    chip_padding = 0.25

    def __init__(self, num_jitters: int = 0) -> None:
        import dlib

        self._dlib = dlib
        self._shape = dlib.shape_predictor(str(verified_path("dlib_shape5")))
        self._net = dlib.face_recognition_model_v1(str(verified_path(self.model_key)))
        self.model_sha256 = MODELS[self.model_key].sha256
        self.num_jitters = num_jitters
        self._lock = threading.Lock()

    def shape(self, image: np.ndarray, detection: Detection):
        x1, y1, x2, y2 = (round(float(v)) for v in detection.box)
        rect = self._dlib.rectangle(x1, y1, x2, y2)
        return self._shape(image, rect)

    def align(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        image = np.ascontiguousarray(image)
        with self._lock:
            shape = self.shape(image, detection)
            chip = self._dlib.get_face_chip(image, shape, size=self.chip_size, padding=self.chip_padding)
        return np.asarray(chip)

    def embed_aligned(self, crops: list[np.ndarray]) -> list[Template]:
        if not crops:
            return []
        with self._lock:
            if self.num_jitters > 0:
                vectors = [
                    np.asarray(self._net.compute_face_descriptor(c, self.num_jitters)) for c in crops
                ]
            else:
                vectors = list(self._net.compute_face_descriptor([np.ascontiguousarray(c) for c in crops]))
        matrix = np.array([np.asarray(v) for v in vectors], dtype=np.float32)
        normed, norms = l2_normalise(matrix)
        return [
            Template(vector=v, model_id=self.model_id, model_sha256=self.model_sha256, raw_norm=float(n))
            for v, n in zip(normed, norms)
        ]
