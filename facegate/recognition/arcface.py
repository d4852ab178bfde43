"""ArcFace (InsightFace w600k MobileFaceNet) on onnxruntime: 512-d templates."""

from __future__ import annotations

import numpy as np

from facegate.alignment import align_arcface
from facegate.detection.base import Detection
from facegate.errors import FaceError
from facegate.models import MODELS, onnx_session
from facegate.recognition.base import Template, l2_normalise

# Faces per run on a GPU provider when not set: a crowd photo's faces go in several runs of at
# most this many, so one run's activations stay bounded.
GPU_BATCH = 32


class ArcFaceRecognizer:
    model_id = "arcface"
    model_key = "arcface_mbf"
    dimension = 512
    input_size = 112

    def __init__(
        self,
        intra_threads: int = 2,
        flip: bool = False,
        inter_threads: int = 1,
        providers: str | None = None,
        max_batch: int | None = None,
    ) -> None:
        """``flip`` adds the mirrored crop's embedding (test-time augmentation): +0.07 points
        on LFW (99.60 -> 99.67%) for twice the embedding time, so it is off by default.
        ``max_batch``: faces per run of the network (``FACEGATE_EMBED_BATCH_SIZE``); None: up to
        ``GPU_BATCH`` on a GPU provider, one on the CPU (where batches cost more CPU time)."""
        self.flip = flip
        self.session = onnx_session(self.model_key, intra_threads, inter_threads, providers=providers)
        on_cpu = self.session.get_providers()[0] == "CPUExecutionProvider"
        self.max_batch = max_batch or (1 if on_cpu else GPU_BATCH)
        self.input_name = self.session.get_inputs()[0].name
        self.model_sha256 = MODELS[self.model_key].sha256
        # Flipped and plain templates must never be compared: they get their own model id.
        if flip:
            self.model_id = "arcface-flip"

    def align(self, image: np.ndarray, detection: Detection) -> np.ndarray:
        if detection.landmarks is None:
            raise FaceError("ArcFace alignment needs 5 landmarks; this detector gave none")
        return align_arcface(image, detection.landmarks, self.input_size)

    def embed_aligned(self, crops: list[np.ndarray]) -> list[Template]:
        """Templates for aligned crops, the network run once per ``max_batch`` faces (the graph's
        batch dimension is dynamic; the vectors are those of one face per run, to float
        rounding). With ``flip`` the mirrored crops join the batch."""
        if not crops:
            return []
        batch = np.stack(crops).astype(np.float32)
        batch = ((batch - 127.5) / 127.5).transpose(0, 3, 1, 2)
        if self.flip:
            batch = np.concatenate([batch, batch[:, :, :, ::-1]])
        vectors = self._run(np.ascontiguousarray(batch))
        if self.flip:
            vectors = vectors[: len(crops)] + vectors[len(crops) :]
        normed, norms = l2_normalise(vectors.astype(np.float32))
        return [
            Template(vector=v, model_id=self.model_id, model_sha256=self.model_sha256, raw_norm=float(n))
            for v, n in zip(normed, norms)
        ]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """The network's raw embeddings of an (N, 3, 112, 112) batch."""
        parts = [
            self.session.run(None, {self.input_name: batch[i : i + self.max_batch]})[0]
            for i in range(0, len(batch), self.max_batch)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
