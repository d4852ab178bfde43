"""What the browser tests share: Debian's chromium driven by Playwright (skipped, saying why,
where it is missing), its flags, and y4m clips for its fake camera."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def fake_camera_args(y4m: Path | None = None) -> list[str]:
    """Flags for a camera that needs no permission prompt, fed from ``y4m`` when given."""
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    return args + ([f"--use-file-for-fake-video-capture={y4m}"] if y4m else [])


@contextmanager
def playwright() -> Iterator[Any]:
    """Playwright's sync API, or a skip that says what is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium (make test installs it)")
    with sync_api.sync_playwright() as p:
        yield p


@contextmanager
def launched(p: Any, extra_args: Iterable[str] = ()) -> Iterator[Any]:
    """A headless chromium of a running Playwright (one per test module: the sync API allows
    one at a time), with ``extra_args``, closed afterwards."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
    try:
        yield browser
    finally:
        browser.close()


@contextmanager
def chromium(extra_args: Iterable[str] = ()) -> Iterator[Any]:
    """A headless chromium (with ``extra_args``) on its own Playwright, closed afterwards."""
    with playwright() as p, launched(p, extra_args) as browser:
        yield browser


def letterbox(bgr: np.ndarray, width: int = 640, height: int = 480, fill: int = 0) -> np.ndarray:
    """``bgr`` scaled to fit ``width`` x ``height``, centred on a plain background."""
    import cv2

    h, w = bgr.shape[:2]
    scale = min(width / w, height / h)
    resized = cv2.resize(bgr, (max(1, int(w * scale)), max(1, int(h * scale))))
    canvas = np.full((height, width, 3), fill, np.uint8)
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return canvas


def write_y4m(frames: Iterable[np.ndarray], path: Path, fps: int = 25) -> Path:
    """BGR frames (all the same even size) as the YUV4MPEG2 file chromium's fake camera plays."""
    import cv2

    with path.open("wb") as out:
        header = False
        for frame in frames:
            if not header:
                h, w = frame.shape[:2]
                out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
                header = True
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path
