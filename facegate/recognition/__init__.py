"""Face recognizers, one small class per model family, chosen by name."""

from __future__ import annotations

from facegate.recognition.base import FaceRecognizer, Template, ensure_same_model

RECOGNIZERS = ("arcface", "dlib")


def create_recognizer(name: str, intra_threads: int = 2) -> FaceRecognizer:
    """``arcface`` (512-d, default, non-commercial) or ``dlib`` (128-d, commercial use allowed)."""
    if name == "arcface":
        from facegate.recognition.arcface import ArcFaceRecognizer

        return ArcFaceRecognizer(intra_threads=intra_threads)
    if name == "dlib":
        from facegate.recognition.dlib_resnet import DlibResNetRecognizer

        return DlibResNetRecognizer()
    raise ValueError(f"unknown recognition model {name!r}; choose one of {', '.join(RECOGNIZERS)}")


__all__ = ["RECOGNIZERS", "FaceRecognizer", "Template", "create_recognizer", "ensure_same_model"]
