"""Draw detections on a photo, for people to check what FaceGate found."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from facegate.detection.base import Detection


def draw_detections(
    image: np.ndarray, detections: Sequence[Detection], labels: Sequence[str] | None = None
) -> np.ndarray:
    """A copy of ``image`` (RGB) with boxes, landmarks and a label per face."""
    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 500))
    for i, det in enumerate(detections):
        x1, y1, x2, y2 = (int(round(v)) for v in det.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), (0, 220, 0), thickness)
        if det.landmarks is not None:
            for x, y in det.landmarks:
                cv2.circle(canvas, (int(x), int(y)), thickness + 1, (255, 200, 0), -1)
        text = labels[i] if labels else f"{i + 1}: {det.score:.2f}"
        scale = 0.4 * thickness
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(th + 2, y1 - 2)
        cv2.rectangle(canvas, (x1, top - th - 2), (x1 + tw + 2, top + 1), (0, 220, 0), -1)
        cv2.putText(canvas, text, (x1 + 1, top - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def save_rgb(path: str, image: np.ndarray) -> None:
    """Write an RGB array with OpenCV (which expects BGR); the format follows the suffix."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}: check the folder exists and the suffix is .jpg or .png")
