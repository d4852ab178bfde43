"""Passive liveness signals over a short recording: pure functions of landmarks and frames.

Each is a separate score with its own limits; none is a trained anti-spoofing model (none
installs offline, and nothing is downloaded at run time).

* :func:`nonrigid_motion` (signal a): how far the face's 106 points move in ways a
  similarity (shift, scale, in-plane rotation) cannot explain, relative to the first frame,
  as a fraction of the eye distance. A blink, a smile or a head turn (3-D: the near side
  grows, the far side shrinks) moves points non-rigidly; a photo shown still, or slid and
  rotated flat in front of the camera, does not. Limit: a person who keeps perfectly still
  scores as low as a photo, which is why the passive mode needs *some* natural motion.
* :func:`plane_residual` (signal b): the same, after the best HOMOGRAPHY between the
  frames' points. Any motion of a flat picture (a printed photo held up and tilted, a phone
  screen moved) is one homography, so only the landmark jitter remains; a real head turning,
  blinking or smiling is not a plane. Limits: a bent photo or a photo with cut-out eyes
  is not one plane either; a replayed VIDEO on a screen passes it (the face in the video
  moves in 3-D), which is the active challenge's job (fresh random actions).
* :func:`moire_score` / :func:`border_score` (signal c): sharp peaks in the high-frequency
  spectrum of the face region (a screen's pixel grid beating with the camera's), and long
  straight edges around the face (the rim of a phone, a tablet or a printout). Reported
  only, not used in the decision: no screen or print recordings were available here to set
  a threshold, webcam JPEG compression smooths moire away, and a door frame or a shelf is a
  long straight edge too.

The residuals are robust maxima: the second largest per-frame value, so one bad landmark
fit (a single frame) neither makes a photo look alive nor a person look flat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from facegate.liveness import landmarks as lm

# Operating point, chosen with bench/liveness_eval.py on the LivePortrait clips against
# still-frame and rigid-plane attacks built from them (see that script's output).
STILL_MAX = 0.012  # non-rigid residual below this (and no blink): a still image
PLANE_MAX = 0.010  # homography residual below this: the face moved as a flat picture
PARALLAX_MIN = 0.0  # nose parallax below this: flat too (0: reported only)
# The plane of the eye and mouth corners, and the points that stand out of it (nose tip,
# below the tip, lower bridge: 25-37 mm in front of it on an adult face).
PLANE_POINTS = (35, 39, 89, 93, 52, 61)
RELIEF_POINTS = (86, 80, 74)


@dataclass(frozen=True)
class PassiveScores:
    """The passive scores of one recording (fractions of the eye distance, or counts)."""

    frames: int
    blinks: int
    nonrigid: float
    plane: float
    parallax: float = 0.0
    moire: float | None = None
    border: float | None = None
    still: bool = False
    planar: bool = False

    @property
    def passed(self) -> bool:
        return not self.still and not self.planar

    def reason(self) -> str:
        if self.still:
            return f"no blink and no non-rigid motion (residual {self.nonrigid:.4f} < {STILL_MAX}): a still image"
        if self.planar:
            return (f"the face moves as one flat plane (homography residual {self.plane:.4f}, "
                    f"nose parallax {self.parallax:.4f}; limits {PLANE_MAX}, {PARALLAX_MIN})")
        return ""

    def to_dict(self) -> dict[str, float | int | bool | None]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _eye_distance(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[lm.EYE_LEFT[0]] - points[lm.EYE_RIGHT[0]])) or 1.0


def _robust_max(values: Sequence[float]) -> float:
    """The second largest value (the largest with fewer than two)."""
    ordered = sorted(values, reverse=True)
    return float(ordered[1] if len(ordered) > 1 else (ordered[0] if ordered else 0.0))


def _residuals(points_seq: Sequence[np.ndarray], model: str) -> list[float]:
    """Per-frame RMS residual of the fit from the first frame's points, over the eye distance."""
    if len(points_seq) < 2:
        return []
    ref = np.asarray(points_seq[0], dtype=np.float64)
    scale = _eye_distance(ref)
    out = []
    for pts in points_seq[1:]:
        dst = np.asarray(pts, dtype=np.float64)
        if model == "similarity":
            matrix, _ = cv2.estimateAffinePartial2D(ref, dst, method=cv2.LMEDS)
            fitted = ref @ matrix[:, :2].T + matrix[:, 2] if matrix is not None else ref
        else:
            h, _ = cv2.findHomography(ref, dst, 0)
            fitted = cv2.perspectiveTransform(ref[None], h)[0] if h is not None else ref
        out.append(float(np.sqrt(((fitted - dst) ** 2).sum(1).mean())) / scale)
    return out


def nonrigid_motion(points_seq: Sequence[np.ndarray]) -> float:
    """Signal (a): robust max of the residual after the best similarity fit to frame 0."""
    return _robust_max(_residuals(points_seq, "similarity"))


def plane_residual(points_seq: Sequence[np.ndarray]) -> float:
    """Signal (b): robust max of the residual after the best homography to frame 0."""
    return _robust_max(_residuals(points_seq, "homography"))


def parallax(points_seq: Sequence[np.ndarray]) -> float:
    """Signal (b2): robust max of how far the nose moves off the homography of the plane
    through the eye and mouth corners (frame 0 -> each frame), over the eye distance. A head
    rotating by theta moves the nose tip ~0.4 sin(theta) eye distances off that plane's
    homography (it stands ~38 mm out of it); a flat picture has no relief, whatever its tilt,
    so only landmark error remains. Limit: the landmark model, shown a strongly tilted photo,
    itself places the nose as if the head had turned, so tilted photos score well above 0."""
    if len(points_seq) < 2:
        return 0.0
    ref = np.asarray(points_seq[0], dtype=np.float64)
    scale = _eye_distance(ref)
    plane_idx, relief_idx = list(PLANE_POINTS), list(RELIEF_POINTS)
    out = []
    for pts in points_seq[1:]:
        dst = np.asarray(pts, dtype=np.float64)
        h, _ = cv2.findHomography(ref[plane_idx], dst[plane_idx], 0)
        if h is None:
            continue
        pred = cv2.perspectiveTransform(ref[relief_idx][None], h)[0]
        out.append(float(np.sqrt(((pred - dst[relief_idx]) ** 2).sum(1).mean())) / scale)
    return _robust_max(out)


def moire_score(gray_face: np.ndarray) -> float:
    """Signal (c1): the strongest high-frequency spectral peak of the face region over the
    median of its band (log ratio); a screen's pixel grid shows as isolated peaks."""
    g = cv2.resize(np.asarray(gray_face, dtype=np.float32), (128, 128), interpolation=cv2.INTER_AREA)
    g = (g - g.mean()) * np.outer(np.hanning(128), np.hanning(128))
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(g)))
    yy, xx = np.mgrid[-64:64, -64:64]
    radius = np.hypot(yy, xx)
    band = spectrum[(radius > 24) & (radius < 62)]
    if band.size == 0:
        return 0.0
    return float(np.log((band.max() + 1e-6) / (np.median(band) + 1e-6)))


def border_score(gray_frame: np.ndarray, box: np.ndarray) -> float:
    """Signal (c2): total length of straight edges longer than 1.2 face widths that do not
    cross the face box, over the face width (0 when there is none)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    width = max(x2 - x1, 1.0)
    edges = cv2.Canny(np.asarray(gray_frame, dtype=np.uint8), 60, 180)
    lines = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=80, minLineLength=int(1.2 * width), maxLineGap=5)
    total = 0.0
    for x_a, y_a, x_b, y_b in (lines.reshape(-1, 4) if lines is not None else []):
        mid_x, mid_y = (x_a + x_b) / 2.0, (y_a + y_b) / 2.0
        if x1 <= mid_x <= x2 and y1 <= mid_y <= y2:
            continue
        total += float(np.hypot(x_b - x_a, y_b - y_a))
    return total / width


def passive_scores(
    points_seq: Sequence[np.ndarray], blink_count: int, moire: float | None = None, border: float | None = None,
    still_max: float | None = None, plane_max: float | None = None, parallax_min: float | None = None,
) -> PassiveScores:
    """All passive scores of a recording and the two that decide: still, planar (the limits
    default to the module's operating point, read at call time)."""
    still_max = STILL_MAX if still_max is None else still_max
    plane_max = PLANE_MAX if plane_max is None else plane_max
    parallax_min = PARALLAX_MIN if parallax_min is None else parallax_min
    nonrigid = nonrigid_motion(points_seq)
    plane = plane_residual(points_seq)
    relief = parallax(points_seq)
    return PassiveScores(
        frames=len(points_seq), blinks=blink_count, nonrigid=nonrigid, plane=plane, parallax=relief, moire=moire,
        border=border, still=blink_count == 0 and nonrigid < still_max, planar=plane < plane_max or relief < parallax_min,
    )
