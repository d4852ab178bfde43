"""Per-frame action signals from 106 landmarks, and detectors of actions over a sequence.

A challenge asks for actions (blink, turn left/right, look up, smile); the server decides
each from the frames alone. Every detector compares the frames with a *baseline* (the
median of the first ``baseline_frames`` frames), so a face that starts slightly turned or
with narrow eyes is judged by how it changes, not by an absolute value; and each returns
*when* the action happened, so a caller can check the order and the timing of a sequence.

Thresholds, chosen on the eight LivePortrait clips with ``bench/pose_check.py`` (each
detection checked on the trace plot, and the frame itself looked at for the blinks of d0,
d3, d9, d18, the smiles of d0, d9, d12, d19 and the turns of d3 and d12):

* blink: both eyes' openness falls below ``BLINK_RATIO`` (0.6) of the baseline and comes
  back above ``BLINK_REOPEN`` (0.8) within ``BLINK_MAX_SECONDS`` (0.6 s; a longer closure is
  eyes shut on purpose, as in d9). Open eyes read 0.2-0.33, shut ones 0.01-0.12, so a blink
  dips 50-95 %; a frown or squint (d3) dips less than 40 % or lasts longer;
* turn: yaw moves ``TURN_DEGREES`` (20) from the baseline towards the asked side, held for
  ``HOLD_FRAMES`` (2) frames: a deliberate turn, not the +-5 degree sway of talking (on a
  still head yaw moves 0.1-0.2 degree between frames). No LivePortrait clip turns much:
  the largest change is +20.6 degrees (d3) and +-16-20 (d12), so clips used as bona fide
  "turn" answers need a lower ``min_degrees`` (10 finds d3's and d12's turns only);
* look up: pitch rises ``LOOK_UP_DEGREES`` (12) above the baseline, held the same way (the
  pose baselines leave out frames with closing eyes, see :func:`pose_baseline`);
* smile: the mouth widens by ``SMILE_RATIO`` (20 %) of its baseline width relative to the
  eye corners, held the same way. Grins measured +28-37 %; talking and a sideways grimace
  (d3, d20) reached +19 %, which is why 20 % and not less.

Times are the frames' own (``FrameSignals.t``); a baseline taken while the person already
squints or smiles makes the action harder to show, never easier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from facegate.liveness import landmarks as lm
from facegate.liveness.pose import pose_from_106

BASELINE_FRAMES = 5
HOLD_FRAMES = 2
BLINK_RATIO = 0.6
BLINK_REOPEN = 0.8
BLINK_MAX_SECONDS = 0.6
TURN_DEGREES = 20.0
LOOK_UP_DEGREES = 12.0
SMILE_RATIO = 0.2


@dataclass(frozen=True)
class FrameSignals:
    """What one frame says. ``t`` is seconds from the first frame; eye openness is the eye
    aspect ratio (mean lid gap / eye width: ~0.25-0.35 open, < 0.1 closed); ``mouth_width``
    is mouth-corner distance over outer-eye-corner distance (yaw and scale cancel out);
    ``mouth_open`` is the inner-lip gap over the mouth width."""

    t: float
    yaw: float
    pitch: float
    roll: float
    eye_left: float
    eye_right: float
    mouth_width: float
    mouth_open: float
    pose_error: float = 0.0

    @property
    def eyes(self) -> float:
        return (self.eye_left + self.eye_right) / 2.0


@dataclass(frozen=True)
class ActionResult:
    """Whether an action happened and in which frames (indices into the sequence, and the
    times ``start``/``end`` in seconds, inclusive); ``peak`` is the strongest change seen
    (degrees for turns, a fraction of the baseline otherwise), reported even when too small."""

    happened: bool
    start_index: int | None = None
    end_index: int | None = None
    start: float | None = None
    end: float | None = None
    peak: float = 0.0


def eye_openness(points: np.ndarray, ring: Sequence[int]) -> float:
    """Eye aspect ratio of one eye ring (outer corner, 3 upper lid, inner corner, 3 lower lid)."""
    p = np.asarray(points, dtype=np.float64)[list(ring)]
    width = float(np.linalg.norm(p[0] - p[4])) or 1.0
    gaps = [np.linalg.norm(p[1 + k] - p[7 - k]) for k in range(3)]
    return float(np.mean(gaps)) / width


def frame_signals(points: np.ndarray, frame_shape: tuple[int, ...], t: float = 0.0) -> FrameSignals:
    """All signals of one frame from its (106, 2) landmarks."""
    p = np.asarray(points, dtype=np.float64)
    pose = pose_from_106(p, frame_shape)
    eye_span = float(np.linalg.norm(p[lm.EYE_LEFT[0]] - p[lm.EYE_RIGHT[0]])) or 1.0
    width = float(np.linalg.norm(p[lm.MOUTH_CORNERS[0]] - p[lm.MOUTH_CORNERS[1]]))
    gap = float(np.linalg.norm(p[lm.LIP_INNER_TOP] - p[lm.LIP_INNER_BOTTOM]))
    return FrameSignals(
        t=t, yaw=pose.yaw, pitch=pose.pitch, roll=pose.roll,
        eye_left=eye_openness(p, lm.EYE_LEFT), eye_right=eye_openness(p, lm.EYE_RIGHT),
        mouth_width=width / eye_span, mouth_open=gap / (width or 1.0), pose_error=pose.error,
    )


def baseline(frames: Sequence[FrameSignals], value: Callable[[FrameSignals], float], n: int = BASELINE_FRAMES) -> float:
    """Median of a signal over the first ``n`` frames (robust to one bad landmark fit)."""
    return float(np.median([value(f) for f in frames[: max(1, n)]]))


def pose_baseline(frames: Sequence[FrameSignals], value: Callable[[FrameSignals], float],
                  n: int = BASELINE_FRAMES) -> float:
    """Median of a pose angle over the first ``n`` frames, leaving out the frames where the
    eyes are closing (below 80 % of the most open): the eyelid points move the fitted pose by
    several degrees (on d12 a blink in the baseline lifted pitch by 3-6 degrees)."""
    first = list(frames[: max(1, n)])
    widest = max(f.eyes for f in first)
    kept = [f for f in first if f.eyes >= 0.8 * widest] or first
    return float(np.median([value(f) for f in kept]))


def _held(frames: Sequence[FrameSignals], hit: np.ndarray, strength: np.ndarray, hold: int) -> ActionResult:
    """The first run of at least ``hold`` consecutive hits, after the baseline frames."""
    peak = float(strength.max()) if len(strength) else 0.0
    run = 0
    for i, h in enumerate(hit):
        run = run + 1 if h else 0
        if run >= hold:
            start = i - run + 1
            end = start
            while end + 1 < len(hit) and hit[end + 1]:
                end += 1
            return ActionResult(True, start, end, frames[start].t, frames[end].t, peak)
    return ActionResult(False, peak=peak)


def turned(frames: Sequence[FrameSignals], direction: Literal["left", "right"], min_degrees: float = TURN_DEGREES,
           hold: int = HOLD_FRAMES, baseline_frames: int = BASELINE_FRAMES) -> ActionResult:
    """The head turned to the PERSON's left (yaw up) or right (yaw down) by ``min_degrees``."""
    if direction not in ("left", "right"):
        raise ValueError(f"direction must be 'left' or 'right', not {direction!r}")
    sign = 1.0 if direction == "left" else -1.0
    base = pose_baseline(frames, lambda f: f.yaw, baseline_frames)
    delta = np.array([sign * (f.yaw - base) for f in frames])
    return _held(frames, delta >= min_degrees, delta, hold)


def looked_up(frames: Sequence[FrameSignals], min_degrees: float = LOOK_UP_DEGREES, hold: int = HOLD_FRAMES,
              baseline_frames: int = BASELINE_FRAMES) -> ActionResult:
    """Pitch rose ``min_degrees`` above the baseline."""
    base = pose_baseline(frames, lambda f: f.pitch, baseline_frames)
    delta = np.array([f.pitch - base for f in frames])
    return _held(frames, delta >= min_degrees, delta, hold)


def smiled(frames: Sequence[FrameSignals], min_ratio: float = SMILE_RATIO, hold: int = HOLD_FRAMES,
           baseline_frames: int = BASELINE_FRAMES) -> ActionResult:
    """The mouth widened by ``min_ratio`` of its baseline width."""
    base = baseline(frames, lambda f: f.mouth_width, baseline_frames) or 1.0
    rise = np.array([f.mouth_width / base - 1.0 for f in frames])
    return _held(frames, rise >= min_ratio, rise, hold)


def blinks(frames: Sequence[FrameSignals], ratio: float = BLINK_RATIO, reopen: float = BLINK_REOPEN,
           max_seconds: float = BLINK_MAX_SECONDS, baseline_frames: int = BASELINE_FRAMES) -> list[ActionResult]:
    """Every blink: both eyes close below ``ratio`` of the baseline openness and reopen above
    ``reopen`` of it within ``max_seconds``. A closure still open at the end is not a blink."""
    base = baseline(frames, lambda f: f.eyes, baseline_frames) or 1.0
    level = np.array([max(f.eye_left, f.eye_right) / base for f in frames])
    found: list[ActionResult] = []
    i = 0
    while i < len(frames):
        if level[i] >= ratio:
            i += 1
            continue
        start = i
        while start > 0 and level[start - 1] < reopen:  # the closing frames before the dip
            start -= 1
        j = i
        while j < len(frames) and level[j] < reopen:
            j += 1
        if j < len(frames):
            end = j - 1
            if frames[end].t - frames[start].t <= max_seconds:
                depth = 1.0 - float(level[start : end + 1].min())
                found.append(ActionResult(True, start, end, frames[start].t, frames[end].t, depth))
        i = j + 1
    return found


def blinked(frames: Sequence[FrameSignals], **kwargs: float) -> ActionResult:
    """The first blink (see :func:`blinks`), or not happened with the deepest dip as ``peak``."""
    found = blinks(frames, **kwargs)  # type: ignore[arg-type]
    if found:
        return found[0]
    if not frames:
        return ActionResult(False)
    base = baseline(frames, lambda f: f.eyes) or 1.0
    return ActionResult(False, peak=1.0 - min(max(f.eye_left, f.eye_right) for f in frames) / base)
