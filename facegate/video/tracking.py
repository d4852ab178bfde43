"""A small IoU tracker with constant-velocity prediction, written here on purpose.

The maintained choice, ``trackers`` (ByteTrack / OC-SORT, Apache-2.0), requires the GUI
``opencv-python`` wheel (and ``supervision``, which requires it too) while FaceGate uses
``opencv-python-headless``; both install the same ``cv2`` package, and whichever is installed last
silently replaces the other's files. Faces in a clip move little between detections, so greedy
IoU with a Hungarian assignment (scipy) and a constant-velocity guess between detection frames
covers it; identities are kept apart by the per-track embeddings (:mod:`facegate.video.identity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from facegate.detection import Detection

# A matched box overlapping its previous place by less than this has jumped (a cut, a dissolve,
# or the track picking up a neighbour): the pipeline looks at its face again at once.
JUMP_IOU = 0.5


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (n x 4) with every box in ``b`` (m x 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return (inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)).astype(np.float32)


@dataclass
class Track:
    """One face followed through the frames."""

    id: int
    box: np.ndarray
    first_frame: int
    last_frame: int  # the last frame a detection was matched to it
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32))
    hits: int = 1
    jumped: bool = False  # the last match moved the box far from where it was: worth a fresh look

    def predicted(self, frame: int) -> np.ndarray:
        """Where the box should be at ``frame``, moving as it last moved."""
        return (self.box + self.velocity * (frame - self.last_frame)).astype(np.float32)


class IouTracker:
    """Tracks from detections: matched by IoU to each track's predicted box (Hungarian
    assignment), new tracks for unmatched detections, ended after ``max_missed`` frames."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 30) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, frame: int, detections: list[Detection]) -> tuple[list[int], list[Track]]:
        """Assign each detection of ``frame`` to a track: (track id per detection, tracks ended)."""
        live = list(self.tracks.values())
        boxes = np.array([d.box for d in detections], np.float32).reshape(-1, 4)
        predicted = np.array([t.predicted(frame) for t in live], np.float32).reshape(-1, 4)
        overlap = iou_matrix(predicted, boxes)
        assigned: list[int] = [0] * len(detections)
        if overlap.size:
            rows, cols = linear_sum_assignment(-overlap)
            for r, c in zip(rows, cols):
                if overlap[r, c] >= self.iou_threshold:
                    self._advance(live[r], frame, boxes[c])
                    assigned[c] = live[r].id
        for i, track_id in enumerate(assigned):
            if track_id == 0:
                assigned[i] = self.start(boxes[i], frame).id
        return assigned, self.expire(frame)

    def start(self, box: np.ndarray, frame: int) -> Track:
        """A new track at ``box`` (a new face, or a box that turned out to hold another person)."""
        track = Track(id=self._next_id, box=np.asarray(box, np.float32), first_frame=frame, last_frame=frame)
        self.tracks[track.id] = track
        self._next_id += 1
        return track

    @staticmethod
    def _advance(track: Track, frame: int, box: np.ndarray) -> None:
        gap = max(frame - track.last_frame, 1)
        track.jumped = float(iou_matrix(track.box[None, :], box[None, :])[0, 0]) < JUMP_IOU
        step = (box - track.box) / gap
        track.velocity = (0.5 * track.velocity + 0.5 * step).astype(np.float32)  # smoothed
        track.box, track.last_frame = box, frame
        track.hits += 1

    def expire(self, frame: int) -> list[Track]:
        """Remove and return the tracks unseen for more than ``max_missed`` frames."""
        ended = [t for t in self.tracks.values() if frame - t.last_frame > self.max_missed]
        for t in ended:
            del self.tracks[t.id]
        return ended

    def finish(self) -> list[Track]:
        """End every track (the source ended)."""
        ended = list(self.tracks.values())
        self.tracks.clear()
        return ended
