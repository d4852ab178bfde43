"""Frame sources: a video file, a webcam index or a stream URL (RTSP, HTTP), read through
OpenCV's FFmpeg backend, as RGB frames with their index and time.

Every failure is a :class:`~facegate.errors.VideoError` that says what is wrong (missing, empty,
not a video, unsupported, no answer); reads are bounded by timeouts so nothing hangs, and a
stream that drops is reopened with backoff a few times before giving up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import StreamUnavailableError, VideoError

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass
class Frame:
    """One decoded frame: RGB uint8, its index in the source and its time in seconds."""

    index: int
    time_s: float
    image: np.ndarray


@dataclass
class SourceInfo:
    kind: str  # "file", "camera" or "stream"
    name: str
    width: int
    height: int
    fps: float
    frames: int | None  # None for cameras and streams


def is_stream(spec: str) -> bool:
    return spec.lower().startswith(STREAM_SCHEMES)


class VideoSource:
    """Frames of one source, opened on construction (so a bad source fails at once).

    ``timeout_s`` bounds opening and each read of a stream; ``reconnects`` is how many times a
    dropped stream is reopened (waiting 0.5 s, 1 s, 2 s, ... between tries). Use as an
    iterator, or ``with VideoSource(...) as source`` to release it early.
    """

    def __init__(self, spec: str | int | Path, timeout_s: float = 10.0, reconnects: int = 5) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.reconnects = reconnects
        self._capture = self._open()
        self.info = self._describe()
        self.truncated = False  # a file that ended before the frame count in its header

    # -- opening ----------------------------------------------------------------------------
    def _kind(self) -> str:
        if isinstance(self.spec, int) or (isinstance(self.spec, str) and self.spec.isdigit()):
            return "camera"
        return "stream" if is_stream(str(self.spec)) else "file"

    def _open(self) -> cv2.VideoCapture:
        kind = self._kind()
        if kind == "file":
            return _open_file(Path(str(self.spec)))
        if kind == "camera":
            capture = cv2.VideoCapture(int(str(self.spec)))
            if not capture.isOpened():
                raise StreamUnavailableError(f"camera {self.spec} could not be opened (is it connected and free?)")
            return capture
        timeout_ms = int(self.timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        capture = cv2.VideoCapture(str(self.spec), cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            raise StreamUnavailableError(
                f"stream {self.spec} could not be opened: refused, or no answer within {self.timeout_s:g} s "
                "(check the URL, the port and the camera's credentials)"
            )
        return capture

    def _describe(self) -> SourceInfo:
        c = self._capture
        count = int(c.get(cv2.CAP_PROP_FRAME_COUNT)) if self._kind() == "file" else 0
        fps = float(c.get(cv2.CAP_PROP_FPS) or 0.0)
        return SourceInfo(
            kind=self._kind(), name=str(self.spec), width=int(c.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(c.get(cv2.CAP_PROP_FRAME_HEIGHT)), fps=fps if 0 < fps < 1000 else 25.0,
            frames=count if count > 0 else None,
        )

    # -- reading ----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        index = 0
        failures = 0
        while True:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                if self.info.kind == "file":
                    self._note_end(index)
                    return
                failures += 1
                if failures > self.reconnects:
                    raise StreamUnavailableError(
                        f"{self.spec} stopped sending frames and did not come back after {self.reconnects} tries"
                    )
                self._reconnect(failures)
                continue
            failures = 0
            yield Frame(index=index, time_s=index / self.info.fps, image=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1

    def _note_end(self, frames_read: int) -> None:
        if frames_read == 0:
            raise VideoError(f"{self.spec}: no frame could be decoded (a damaged or unsupported video)")
        expected = self.info.frames
        if expected and frames_read < expected - 1:  # containers often over-count by one
            self.truncated = True
            log.warning("%s ended at frame %d of %d: the file looks truncated", self.spec, frames_read, expected)

    def _reconnect(self, attempt: int) -> None:
        wait = min(0.5 * 2 ** (attempt - 1), 8.0)
        log.warning("%s: no frame; reconnecting in %.1f s (try %d of %d)", self.spec, wait, attempt, self.reconnects)
        self._capture.release()
        time.sleep(wait)
        try:
            self._capture = self._open()
        except StreamUnavailableError:
            pass  # counted as a failure by the next read

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_file(path: Path) -> cv2.VideoCapture:
    """A file checked before FFmpeg sees it: it exists, it is not empty, it decodes."""
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty (0 bytes)")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise VideoError(
            f"{path}: not a video FFmpeg can read (damaged, truncated before its index, or an unsupported format)"
        )
    if int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) <= 0:
        capture.release()
        raise VideoError(f"{path}: the video has no picture stream")
    return capture
