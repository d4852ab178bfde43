"""Face quality: one score per face, from the things that make a template unreliable.

Each factor maps to [0, 1] (1 = no problem); the overall score is their geometric mean,
so one very bad factor drags the face down without a single weight deciding everything.
A face below the enrollment limit of any factor is refused with that factor's reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from facegate.detection.base import Detection
from facegate.liveness.pose import pose_from_5


@dataclass(frozen=True)
class QualityLimits:
    """Minimum factor values for a face to be enrolled (probes are only scored)."""

    min_face_size: float = 48.0  # pixels, shorter side of the detected box
    min_sharpness: float = 0.15  # Laplacian variance ~35 on the 112 px face patch
    max_yaw_degrees: float = 35.0
    max_roll_degrees: float = 30.0
    min_brightness: float = 50.0
    max_brightness: float = 215.0
    min_detector_score: float = 0.7
    min_overall: float = 0.5


@dataclass
class QualityReport:
    score: float
    factors: dict[str, float]
    measures: dict[str, float]
    reasons: list[str] = field(default_factory=list)

    @property
    def acceptable(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict:
        return {
            "score": round(self.score, 3),
            "acceptable": self.acceptable,
            "factors": {k: round(v, 3) for k, v in self.factors.items()},
            "measures": {k: round(v, 2) for k, v in self.measures.items()},
            "reasons": self.reasons,
        }


def estimate_pose(landmarks: np.ndarray, frame_shape: tuple[int, ...] | None = None) -> tuple[float, float]:
    """Yaw and roll in degrees from the five detector points (yaw > 0: the person turns to
    their left; roll > 0: clockwise in the image).

    A mean 3-D face is fitted to the points with solvePnP (:mod:`facegate.liveness.pose`).
    The earlier 2-D formula (nose offset from the eye midline) mistook the nose's depth for
    a turn: a frontal face read -50 degrees and a 45 degree turn -90.
    """
    pose = pose_from_5(landmarks, frame_shape)
    return pose.yaw, pose.roll


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian on the aligned grey crop: low means blurred."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _ramp(value: float, bad: float, good: float) -> float:
    if good == bad:
        return 1.0
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def face_patch(image: np.ndarray, detection: Detection, size: int = 112) -> np.ndarray:
    """The detected box resized to a fixed size, so quality is measured the same way
    whichever recognizer (and crop framing) is in use."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = detection.box
    x1, y1 = int(max(0, np.floor(x1))), int(max(0, np.floor(y1)))
    x2, y2 = int(min(w, np.ceil(x2))), int(min(h, np.ceil(y2)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return np.zeros((size, size, 3), dtype=np.uint8)
    patch = image[y1:y2, x1:x2]
    interp = cv2.INTER_AREA if (x2 - x1) > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def assess(image: np.ndarray, detection: Detection, limits: QualityLimits | None = None) -> QualityReport:
    limits = limits or QualityLimits()
    size = detection.size
    patch = face_patch(image, detection)
    lap = sharpness(patch)
    grey = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    centre = grey[h // 5 : h - h // 8, w // 5 : w - w // 5]  # skin, not hair or background
    brightness = float(centre.mean())
    clipped = float(((centre < 8) | (centre > 247)).mean())
    yaw, roll = estimate_pose(detection.landmarks, image.shape) if detection.landmarks is not None else (0.0, 0.0)

    factors = {
        "size": _ramp(size, 24.0, 112.0),
        # Laplacian variance of a 112 px crop: ~20 is visibly blurred, 150+ is crisp.
        "sharpness": _ramp(lap, 15.0, 150.0),
        "pose": min(_ramp(-abs(yaw), -60.0, -10.0), _ramp(-abs(roll), -45.0, -10.0)),
        "exposure": min(
            _ramp(brightness, 25.0, 70.0), _ramp(-brightness, -235.0, -195.0), _ramp(-clipped, -0.5, -0.1)
        ),
        "detector": _ramp(detection.score, 0.4, 0.8),
    }
    overall = float(np.exp(np.mean(np.log(np.maximum(list(factors.values()), 1e-3)))))
    reasons: list[str] = []
    if size < limits.min_face_size:
        reasons.append(f"face too small: {size:.0f} px, need at least {limits.min_face_size:.0f} px")
    if factors["sharpness"] < limits.min_sharpness:
        reasons.append(f"image too blurred (sharpness {lap:.0f})")
    if abs(yaw) > limits.max_yaw_degrees:
        reasons.append(f"head turned too far ({yaw:+.0f} degrees), look at the camera")
    if abs(roll) > limits.max_roll_degrees:
        reasons.append(f"head tilted too far ({roll:+.0f} degrees)")
    if brightness < limits.min_brightness:
        reasons.append(f"face too dark (brightness {brightness:.0f})")
    if brightness > limits.max_brightness:
        reasons.append(f"face overexposed (brightness {brightness:.0f})")
    if detection.score < limits.min_detector_score:
        reasons.append(f"face not clearly visible (detector score {detection.score:.2f})")
    if overall < limits.min_overall and not reasons:
        reasons.append(f"overall quality too low ({overall:.2f})")
    return QualityReport(
        score=overall,
        factors=factors,
        measures={
            "face_size": size,
            "sharpness": lap,
            "yaw": yaw,
            "roll": roll,
            "brightness": brightness,
            "clipped_fraction": clipped,
            "detector_score": detection.score,
        },
        reasons=reasons,
    )
