"""The face engine: detect, align, assess and embed every face in a photo.

Everything above it (service, API, CLI, evaluation, video) goes through this one class, so a
face is found, aligned and scored the same way everywhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from facegate.alignment import ARCFACE_TEMPLATE
from facegate.config import Settings, env_name, get_settings
from facegate.detection import DETECTORS, Detection, create_detector
from facegate.errors import ConfigurationError, ManyFacesError, NoFaceError
from facegate.models.registry import resolve_providers
from facegate.quality import QualityLimits, QualityReport, assess
from facegate.recognition import RECOGNIZERS, Template, create_recognizer

# When nothing scores above the normal threshold, a photo known to hold one face (an
# evaluation pair, a passport-style crop) is searched again at this floor.
FALLBACK_SCORE_THRESHOLD = 0.3


@dataclass
class Face:
    detection: Detection
    template: Template
    quality: QualityReport
    aligned: np.ndarray
    fallback: str = ""  # "", "low_score" or "center_crop": how the face was found

    def to_dict(self) -> dict:
        out = self.detection.to_dict()
        out["quality"] = self.quality.to_dict()
        if self.fallback:
            out["fallback"] = self.fallback
        return out


def central_box(height: int, width: int, fraction: float = 0.5) -> np.ndarray:
    """The assumed face box when no face is found: a centred square (LFW-style framing)."""
    side = fraction * min(height, width)
    cx, cy = width / 2.0, height / 2.0
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dtype=np.float32)


# A face less than half the size of the largest one is a bystander in the background, not a
# second person presenting themselves: enrollment ignores it instead of refusing the photo.
BACKGROUND_FACE_RATIO = 0.5


def foreground_faces(faces: list[Face]) -> tuple[list[Face], int]:
    """(faces comparable in size to the largest, number of smaller background faces)."""
    if len(faces) < 2:
        return list(faces), 0
    largest = max(f.detection.size for f in faces)
    kept = [f for f in faces if f.detection.size >= BACKGROUND_FACE_RATIO * largest]
    return kept, len(faces) - len(kept)


def main_face_index(detections: list[Detection], height: int, width: int) -> int:
    """The subject of a portrait: large and near the centre (InsightFace's rule for LFW)."""
    centre = np.array([width / 2.0, height / 2.0])
    best, best_value = 0, -np.inf
    for i, det in enumerate(detections):
        box_centre = np.array([(det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2])
        value = det.width * det.height - 2.0 * float(((box_centre - centre) ** 2).sum())
        if value > best_value:
            best, best_value = i, value
    return best


def configured_score_threshold(settings: Settings, detector: str) -> float | None:
    """The default score threshold the settings give a detector, on that detector's scale
    (None for an unknown name: :func:`create_detector` refuses it)."""
    if detector == "scrfd":
        return settings.det_score_threshold
    if detector == "dlib":
        return settings.det_dlib_score_threshold
    return None


class FaceEngine:
    """A detector and a recognizer, with the glue between them.

    ``score_threshold`` overrides the detector's threshold from ``settings``.
    """

    def __init__(
        self,
        model: str | None = None,
        detector: str | None = None,
        settings: Settings | None = None,
        score_threshold: float | None = None,
        quality_limits: QualityLimits | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.model_name = model or self.settings.recognition_model
        self.detector_name = detector or self.settings.detector
        if score_threshold is None:
            score_threshold = configured_score_threshold(self.settings, self.detector_name)
        self.detector = create_detector(
            self.detector_name,
            score_threshold=score_threshold,
            min_face_size=self.settings.min_face_size,
            max_side=self.settings.det_max_side,
            intra_threads=self.settings.ort_intra_threads,
            inter_threads=self.settings.ort_inter_threads,
            edge_padding=self.settings.det_edge_padding,
            providers=self.settings.ort_providers,
        )
        self.recognizer = create_recognizer(
            self.model_name,
            intra_threads=self.settings.ort_intra_threads,
            inter_threads=self.settings.ort_inter_threads,
            providers=self.settings.ort_providers,
            max_batch=self.settings.embed_batch_size or None,
        )
        self.quality_limits = quality_limits or QualityLimits()
        self._shape5: Any = None  # dlib's 5-point predictor, loaded on first use
        self._shape_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.recognizer.model_id

    @property
    def model_sha256(self) -> str:
        return self.recognizer.model_sha256

    @property
    def providers(self) -> dict[str, list[str]]:
        """Where each model runs: the onnxruntime providers its session got
        (``session.get_providers()``), or ``["dlib"]`` for dlib's own CPU code."""
        return {
            role: list(session.get_providers()) if session is not None else ["dlib"]
            for role, session in (
                ("detector", getattr(self.detector, "session", None)),
                ("recognizer", getattr(self.recognizer, "session", None)),
            )
        }

    def info(self) -> dict[str, Any]:
        """What this engine is: model, detector and where each runs."""
        return {"model": self.model_id, "detector": self.detector_name, "providers": self.providers}

    # -- detection ------------------------------------------------------------------------
    def detect(self, image: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        found = self.detector.detect(image, score_threshold)
        if self.model_id.startswith("arcface"):
            for det in found:
                if det.landmarks is None:
                    det.landmarks = self._arcface_points_from_dlib(image, det.box)
        return found

    def _arcface_points_from_dlib(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """ArcFace's 5 points for a detector that gives none (dlib HOG).

        dlib's 5-point model marks eye corners and the base of the nose; the eye centres are
        the corners' means, the nose tip is approximated by the nose base, and the mouth
        corners are placed where the ArcFace template puts them relative to the eyes.
        """
        import dlib

        from facegate.models import verified_path

        with self._shape_lock:
            if self._shape5 is None:
                self._shape5 = dlib.shape_predictor(str(verified_path("dlib_shape5")))
            x1, y1, x2, y2 = (round(float(v)) for v in box)
            shape = self._shape5(np.ascontiguousarray(image), dlib.rectangle(x1, y1, x2, y2))
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        # dlib order: 0,1 = one eye's corners (image right), 2,3 = the other eye's, 4 = nose base.
        right_eye, left_eye, nose = pts[0:2].mean(0), pts[2:4].mean(0), pts[4]
        from facegate.alignment import similarity_transform

        matrix = similarity_transform(ARCFACE_TEMPLATE[:3], np.stack([left_eye, right_eye, nose]))
        mouth = ARCFACE_TEMPLATE[3:] @ matrix[:, :2].T + matrix[:, 2]
        return np.vstack([left_eye, right_eye, nose, mouth]).astype(np.float32)

    def _synthetic_detection(self, image: np.ndarray) -> Detection:
        h, w = image.shape[:2]
        box = central_box(h, w)
        landmarks = None
        if self.model_id.startswith("arcface"):
            side = box[2] - box[0]
            landmarks = (ARCFACE_TEMPLATE / 112.0 * side + box[:2]).astype(np.float32)
        return Detection(box=box, score=0.0, landmarks=landmarks, detector="center_crop")

    # -- faces ----------------------------------------------------------------------------
    def faces_from_detections(
        self, image: np.ndarray, detections: list[Detection], qualities: list[QualityReport] | None = None
    ) -> list[Face]:
        """Align, embed and assess each detection (``qualities`` when the caller assessed them
        already, e.g. to embed only the faces worth it)."""
        crops = [self.recognizer.align(image, det) for det in detections]
        templates = self.recognizer.embed_aligned(crops)
        reports = qualities if qualities is not None else [assess(image, det, self.quality_limits) for det in detections]
        return [
            Face(detection=det, template=tpl, quality=quality, aligned=crop)
            for det, tpl, quality, crop in zip(detections, templates, reports, crops)
        ]

    def assess(self, image: np.ndarray, detection: Detection) -> QualityReport:
        return assess(image, detection, self.quality_limits)

    def analyze(self, image: np.ndarray, max_faces: int | None = None) -> list[Face]:
        """Every face in the photo, best detector score first."""
        detections = self.detect(image)
        if max_faces is not None:
            detections = detections[:max_faces]
        return self.faces_from_detections(image, detections)

    def main_face(self, image: np.ndarray, fallback: bool = True) -> Face:
        """The portrait's subject, with documented fall-backs for evaluation.

        1. faces at the normal threshold: the largest, most central one;
        2. otherwise faces at the low floor (``FALLBACK_SCORE_THRESHOLD``): same rule;
        3. otherwise the centred square covering half the shorter side (``center_crop``).
        With ``fallback=False``, step 1 only, and no face raises :class:`NoFaceError`.
        """
        h, w = image.shape[:2]
        detections = self.detect(image)
        how = ""
        if not detections and fallback:
            detections = self.detect(image, FALLBACK_SCORE_THRESHOLD)
            how = "low_score"
        if not detections:
            if not fallback:
                raise NoFaceError("no face found in the image")
            detections, how = [self._synthetic_detection(image)], "center_crop"
        det = detections[main_face_index(detections, h, w)]
        face = self.faces_from_detections(image, [det])[0]
        face.fallback = how
        return face

    def single_face(self, image: np.ndarray) -> Face:
        """Exactly one face, or a clear error (enrollment without a chosen face)."""
        faces, _background = foreground_faces(self.analyze(image))
        if not faces:
            raise NoFaceError("no face found in the image; use a photo where the face is clearly visible")
        if len(faces) > 1:
            raise ManyFacesError(
                f"{len(faces)} faces found; use a photo with one person or choose the face to use"
            )
        return faces[0]

    def compare(self, a: Template, b: Template) -> float:
        return a.similarity(b)


class EnginePool:
    """One engine per (model, detector) for one set of settings: sessions are costly to open,
    and the settings a service was given are the ones its engines run with."""

    def __init__(self, settings: Settings) -> None:
        for field, value, known in (
            ("detector", settings.detector, DETECTORS),
            ("recognition_model", settings.recognition_model, RECOGNIZERS),
        ):
            if value not in known:
                raise ConfigurationError(f"{env_name(field)}: unknown name {value!r}; choose one of {', '.join(known)}")
        resolve_providers(settings.ort_providers)  # CUDA asked for and not installed: say so at start-up
        self.settings = settings
        self._engines: dict[tuple[str, str], FaceEngine] = {}
        self._lock = threading.Lock()

    def get(self, model: str | None = None, detector: str | None = None) -> FaceEngine:
        """The engine for ``model`` and ``detector`` (default: the settings'); an unknown name
        raises ValueError."""
        key = (model or self.settings.recognition_model, detector or self.settings.detector)
        with self._lock:  # held while building, so two threads never open the same sessions
            engine = self._engines.get(key)
            if engine is None:
                engine = FaceEngine(key[0], key[1], settings=self.settings)
                self._engines[key] = engine
        return engine


_default_pool: EnginePool | None = None
_default_lock = threading.Lock()


def get_engine(model: str | None = None, detector: str | None = None) -> FaceEngine:
    """The engine from the pool of :func:`get_settings` (a new pool when those settings change)."""
    global _default_pool
    settings = get_settings()
    with _default_lock:
        if _default_pool is None or (_default_pool.settings is not settings and _default_pool.settings != settings):
            _default_pool = EnginePool(settings)
        pool = _default_pool
    return pool.get(model, detector)
