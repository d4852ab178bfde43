"""Face recognizers, one small class per model family, chosen by name."""

from __future__ import annotations

from facegate.recognition.base import FaceRecognizer, Template, ensure_same_model

RECOGNIZERS = ("arcface", "arcface-flip", "dlib")


def create_recognizer(
    name: str, intra_threads: int = 2, inter_threads: int = 1, providers: str | None = None, max_batch: int | None = None
) -> FaceRecognizer:
    """``arcface`` (512-d, default, non-commercial), ``arcface-flip`` (the same weights with
    mirrored-crop augmentation: more accurate, half the speed) or ``dlib`` (128-d,
    commercial use allowed). Thread counts, ``providers`` (a ``FACEGATE_ORT_PROVIDERS`` value;
    None: the process settings') and ``max_batch`` (faces per run; None: automatic) apply to
    onnxruntime models; dlib runs on its own and embeds a list of chips in one call."""
    if name in ("arcface", "arcface-flip"):
        from facegate.recognition.arcface import ArcFaceRecognizer

        return ArcFaceRecognizer(
            intra_threads=intra_threads,
            inter_threads=inter_threads,
            flip=name == "arcface-flip",
            providers=providers,
            max_batch=max_batch,
        )
    if name == "dlib":
        from facegate.recognition.dlib_resnet import DlibResNetRecognizer

        return DlibResNetRecognizer()
    raise ValueError(f"unknown recognition model {name!r}; choose one of {', '.join(RECOGNIZERS)}")


__all__ = ["RECOGNIZERS", "FaceRecognizer", "Template", "create_recognizer", "ensure_same_model"]
