"""Face detectors, one small class per family, chosen by name."""

from __future__ import annotations

from facegate.detection.base import Detection, FaceDetector

DETECTORS = ("scrfd", "dlib")


def create_detector(
    name: str,
    score_threshold: float | None = None,
    min_face_size: int = 20,
    max_side: int = 640,
    intra_threads: int = 2,
    inter_threads: int = 1,
    edge_padding: float | None = None,
    providers: str | None = None,
) -> FaceDetector:
    """Build a detector by name: ``scrfd`` (default, non-commercial) or ``dlib`` (HOG).

    ``score_threshold`` is on the detector's own scale (SCRFD: a probability; dlib: an SVM
    margin); None keeps the detector's built-in default. ``edge_padding`` (SCRFD only) is the
    margin added on each side, as a fraction of the image's width and height, so a face cut by
    the frame edge is found; None keeps SCRFD's default. ``providers`` (SCRFD only) is a
    ``FACEGATE_ORT_PROVIDERS`` value; None: the process settings'.
    """
    if name == "scrfd":
        from facegate.detection.scrfd import DEFAULT_EDGE_PADDING, DEFAULT_SCORE_THRESHOLD, ScrfdDetector

        return ScrfdDetector(
            score_threshold=DEFAULT_SCORE_THRESHOLD if score_threshold is None else score_threshold,
            min_face_size=min_face_size,
            max_side=max_side,
            intra_threads=intra_threads,
            inter_threads=inter_threads,
            edge_padding=DEFAULT_EDGE_PADDING if edge_padding is None else edge_padding,
            providers=providers,
        )
    if name == "dlib":
        from facegate.detection.dlib_hog import DlibHogDetector

        return DlibHogDetector(min_face_size=min_face_size, score_threshold=score_threshold or 0.0)
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


__all__ = ["DETECTORS", "Detection", "FaceDetector", "create_detector"]
