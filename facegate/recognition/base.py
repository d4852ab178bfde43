"""Templates and the recognizer interface shared by every model family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from facegate.detection.base import Detection
from facegate.errors import ModelMismatchError


@dataclass(frozen=True)
class Template:
    """An L2-normalised face embedding, tagged with the model that made it.

    The tag is the model id plus the weight checksum: two templates are comparable only
    when both match, so a template from another model (or other weights) is never scored.
    """

    vector: np.ndarray
    model_id: str
    model_sha256: str
    raw_norm: float = 0.0  # norm before normalisation: a face-likeness / quality signal

    @property
    def model_tag(self) -> str:
        return f"{self.model_id}@{self.model_sha256[:12]}"

    def similarity(self, other: Template) -> float:
        ensure_same_model(self, other)
        return float(np.dot(self.vector, other.vector))


def ensure_same_model(a: Template, b: Template) -> None:
    if a.model_id != b.model_id or a.model_sha256 != b.model_sha256:
        raise ModelMismatchError(
            f"templates come from different models ({a.model_tag} vs {b.model_tag}); "
            "re-enroll with one model to compare them"
        )


def l2_normalise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12), norms[:, 0]


class FaceRecognizer(Protocol):
    """One model family: how it aligns a face and turns it into a template."""

    model_id: str
    model_sha256: str
    dimension: int

    def align(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        """The canonical crop this model was trained on."""
        ...

    def embed_aligned(self, crops: list[np.ndarray]) -> list[Template]:
        """Templates for crops made by :meth:`align`."""
        ...
