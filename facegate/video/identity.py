"""Identity per track, not per frame.

A track accumulates the templates of its good-quality faces, weighted by quality, and is
decided on their mean at a few checkpoints (1, 2, 4, ... 128 good frames). It stays *unknown*
until the evidence passes the gallery's calibrated identify threshold, and once named it keeps
its name; if the evidence later names someone else (a tracker that jumped to another person),
the track goes back to unknown and starts over: it never flips to a person who is not there.

**The per-track false-positive rate.** A photo is searched once; a track is searched at every
checkpoint, so a stranger gets ``LOOKS`` chances to pass. By the union bound the chance that any
look passes is at most the sum of the per-look rates, so each look is decided at the gallery's
identify FPIR divided by ``LOOKS``: a stranger's whole track is falsely named at most at the
gallery's per-search rate. (Means of several frames of one face have impostor scores no more
spread than single frames, so the single-photo calibration stays on the safe side.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facegate.detection import Detection
from facegate.engine import Face
from facegate.gallery.schemas import Candidate
from facegate.quality import QualityReport

CHECKPOINTS = (1, 2, 4, 8, 16, 32, 64, 128)
LOOKS = len(CHECKPOINTS)

# A frame's face counts as evidence when the recognizer has something to work on. This is looser
# than enrollment's quality gate on purpose: a moving person is rarely enrollment-grade, and each
# frame's weight (its quality score) already makes poor frames count for little.
MIN_TRACK_FACE_PX = 24.0
MIN_TRACK_SHARPNESS = 15.0  # Laplacian variance of the 112 px face patch; under it the face is a smear
MIN_TRACK_DETECTOR_SCORE = 0.5
MIN_WEIGHT = 0.02


def usable_detection(detection: Detection, quality: QualityReport) -> bool:
    """Enough face for its template to say something about who it is (checked before embedding)."""
    return (detection.size >= MIN_TRACK_FACE_PX and quality.measures.get("sharpness", 0.0) >= MIN_TRACK_SHARPNESS
            and detection.score >= MIN_TRACK_DETECTOR_SCORE)


def usable(face: Face) -> bool:
    return usable_detection(face.detection, face.quality)


def per_look_fpir(track_fpir: float) -> float:
    """The FPIR of one checkpoint's search that keeps a whole track's rate at ``track_fpir``."""
    return track_fpir / LOOKS


@dataclass
class TrackIdentity:
    """What is known of who one track is."""

    track_id: int
    first_frame: int
    last_frame: int
    weighted_sum: np.ndarray | None = None
    weight: float = 0.0
    good_frames: int = 0
    frames_seen: int = 0
    label: Candidate | None = None
    named_at_frame: int | None = None
    best_score: float | None = None
    best_face: Face | None = None
    unknown_reported: bool = False
    conflicts: int = 0
    history: list[int] = field(default_factory=list)  # frames at which a checkpoint was decided

    def add(self, frame: int, face: Face) -> bool:
        """Take one face of this track; True when its good frames reach a checkpoint."""
        self.last_frame = frame
        self.frames_seen += 1
        if not usable(face):
            return False
        w = max(float(face.quality.score), MIN_WEIGHT)
        vector = face.template.vector.astype(np.float32)
        self.weighted_sum = vector * w if self.weighted_sum is None else self.weighted_sum + vector * w
        self.weight += w
        self.good_frames += 1
        if self.best_face is None or face.quality.score > self.best_face.quality.score:
            self.best_face = face
        return self.good_frames in CHECKPOINTS

    def template(self) -> np.ndarray:
        """The quality-weighted mean of the good templates, L2-normalised."""
        if self.weighted_sum is None:
            raise ValueError(f"track {self.track_id} has no good-quality face yet")
        return self.weighted_sum / max(float(np.linalg.norm(self.weighted_sum)), 1e-12)

    @property
    def state(self) -> str:
        if self.label is not None:
            return "identified"
        return "unknown" if self.good_frames else "pending"

    def decide(self, frame: int, candidates: list[Candidate], threshold: float) -> str:
        """Apply one checkpoint's ranking: 'named', 'conflict' (reset to unknown) or 'unchanged'."""
        self.history.append(frame)
        top = candidates[0] if candidates else None
        if top is not None:
            self.best_score = top.score
        passes = top is not None and top.score >= threshold
        if self.label is None:
            if passes and top is not None:
                self.label, self.named_at_frame = top, frame
                return "named"
            return "unchanged"
        if passes and top is not None and top.subject != self.label.subject:
            self.conflicts += 1
            self.label, self.named_at_frame = None, None
            self.weighted_sum, self.weight, self.good_frames = None, 0.0, 0
            return "conflict"
        return "unchanged"
