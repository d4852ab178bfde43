"""Frames of a recorded clip for a liveness check: a window of a video file, subsampled.

The CLI checks a recorded clip with it, and the evaluation cuts its challenge windows
with it; a browser or kiosk sends its own frames and timestamps instead.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_window(path: str | Path, start: float = 0.0, end: float | None = None, fps: float = 10.0,
                max_frames: int = 40) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames between ``start`` and ``end`` seconds, about ``fps`` a second (at most
    ``max_frames``), and their times in seconds from the window's first frame."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(native / fps))
    frames: list[np.ndarray] = []
    times: list[float] = []
    index = 0
    try:
        while len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            t = index / native
            index += 1
            if t < start or (index - 1) % step:
                continue
            if end is not None and t > end:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            times.append(t)
    finally:
        cap.release()
    return frames, [t - times[0] for t in times] if times else []


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
