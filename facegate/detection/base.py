"""What every detector returns, whatever its family."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class Detection:
    """One face in image coordinates.

    ``landmarks`` are the five ArcFace points (left eye, right eye, nose tip, left and
    right mouth corner, as seen in the image) or ``None`` where a detector gives none.
    """

    box: np.ndarray  # x1, y1, x2, y2 (float32)
    score: float
    landmarks: np.ndarray | None = None  # (5, 2) float32
    detector: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """The shorter side of the box: what 'minimum face size' means."""
        return min(self.width, self.height)

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "score": round(self.score, 4),
            "landmarks": None
            if self.landmarks is None
            else [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks],
        }


class FaceDetector(Protocol):
    name: str
    model_keys: tuple[str, ...]
    # On the detector's own scale: SCRFD's is a probability, dlib HOG's an SVM margin.
    score_threshold: float

    def detect(self, image: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        """All faces in an RGB uint8 image scoring at least ``score_threshold`` (default: the
        detector's own), best score first."""
        ...


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box against many (x1, y1, x2, y2)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy non-maximum suppression; returns kept indices, best first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        if order.size == 1:
            break
        overlaps = iou(boxes[best], boxes[order[1:]])
        order = order[1:][overlaps <= threshold]
    return keep
