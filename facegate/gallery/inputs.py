"""What a decision can be asked about: photo bytes, a decoded frame, or faces already found.

A video pipeline or a liveness check holds decoded frames (and often faces it has already
detected and embedded); they call the same enrollment and recognition code as an uploaded
photo, with no re-encoding. :func:`as_probe` is the one path: a photo is decoded into a
frame, a frame is analysed into a :class:`Probe`, and a probe is what decisions read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from facegate.engine import Face, FaceEngine
from facegate.errors import ImageError, ModelMismatchError
from facegate.imaging import ImageLimits, decode_image, image_sha256


@dataclass
class PhotoInput:
    """One uploaded photo: its bytes and a name to report it by."""

    name: str
    data: bytes

    def to_frame(self, limits: ImageLimits) -> "FrameInput":
        """Decode (within the limits); the frame keeps the hash of the original bytes, so the
        same upload is recognised as a duplicate however it is decoded."""
        image = decode_image(self.data, limits, name=self.name)
        return FrameInput(name=self.name, image=image, source_sha256=image_sha256(self.data))


@dataclass
class FrameInput:
    """A decoded RGB frame (height x width x 3, uint8), e.g. from a video or a camera."""

    name: str
    image: np.ndarray
    source_sha256: str = ""

    def __post_init__(self) -> None:
        image = self.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", None)
            raise ImageError(f"{self.name}: a frame must be an RGB uint8 array of shape (h, w, 3), got {shape}")
        if min(image.shape[:2]) < 1:
            raise ImageError(f"{self.name}: the frame is empty")
        if not self.source_sha256:
            digest = hashlib.sha256(repr(image.shape).encode())
            digest.update(np.ascontiguousarray(image).tobytes())
            self.source_sha256 = digest.hexdigest()


@dataclass
class Probe:
    """One picture analysed: every face found in it (detector order) and the picture's size,
    which decides the main face of a portrait."""

    name: str
    faces: list[Face]
    height: int
    width: int
    source_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.source_sha256 and self.faces:
            self.source_sha256 = hashlib.sha256(self.faces[0].template.vector.tobytes()).hexdigest()


ProbeInput = PhotoInput | FrameInput | Probe


def as_probe(item: ProbeInput, engine: FaceEngine, limits: ImageLimits, max_faces: int | None = None) -> Probe:
    """Decode a photo, analyse a frame, or check that given faces come from ``engine``'s model."""
    if isinstance(item, PhotoInput):
        item = item.to_frame(limits)
    if isinstance(item, FrameInput):
        faces = engine.analyze(item.image, max_faces=max_faces)
        height, width = item.image.shape[:2]
        return Probe(name=item.name, faces=faces, height=height, width=width, source_sha256=item.source_sha256)
    for face in item.faces:
        if face.template.model_sha256 != engine.model_sha256:
            raise ModelMismatchError(
                f"{item.name}: faces embedded with {face.template.model_id}@{face.template.model_sha256[:12]} "
                f"cannot be compared with a {engine.model_id} gallery"
            )
    if max_faces is not None and len(item.faces) > max_faces:
        return Probe(item.name, item.faces[:max_faces], item.height, item.width, item.source_sha256)
    return item
