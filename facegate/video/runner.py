"""Run live recognition over a whole source: progress, an annotated copy, events as JSON lines,
and a clean stop (Ctrl-C or a stop flag) that still ends every track and flushes the outputs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facegate.errors import VideoError
from facegate.gallery.service import GalleryService
from facegate.security import Principal
from facegate.video.events import Event, EventSink, JsonLinesSink, ListSink
from facegate.video.pipeline import FaceLabel, LiveRecognizer
from facegate.video.sources import SourceInfo, VideoSource

GREEN, AMBER, GREY = (0, 200, 0), (255, 170, 0), (160, 160, 160)


@dataclass
class VideoRunReport:
    source: str
    frames: int
    seconds: float
    fps: float
    tracks: int
    identified: dict[str, int]  # subject -> tracks named so
    events: list[Event] = field(default_factory=list)
    stopped: bool = False
    truncated: bool = False


def annotate(image: np.ndarray, labels: list[FaceLabel]) -> np.ndarray:
    """A copy of the RGB frame with a box and a name (or 'unknown') per face."""
    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for face in labels:
        colour = GREEN if face.subject else (AMBER if face.state == "unknown" else GREY)
        x1, y1, x2, y2 = (int(round(v)) for v in face.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        text = f"#{face.track} {face.text()}"
        scale = 0.45 * thickness
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(th + 3, y1 - 3)
        cv2.rectangle(canvas, (x1, top - th - 3), (x1 + tw + 3, top + 2), colour, -1)
        cv2.putText(canvas, text, (x1 + 1, top - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


class AnnotatedWriter:
    """An mp4 (or avi) copy of the source with the labels drawn on every frame."""

    def __init__(self, path: Path, info: SourceInfo) -> None:
        fourcc = cv2.VideoWriter.fourcc(*("mp4v" if path.suffix.lower() != ".avi" else "MJPG"))
        self.writer = cv2.VideoWriter(str(path), fourcc, info.fps, (info.width, info.height))
        if not self.writer.isOpened():
            raise VideoError(f"{path}: cannot write a video there (check the folder and the suffix .mp4 or .avi)")

    def write(self, image: np.ndarray, labels: list[FaceLabel]) -> None:
        self.writer.write(cv2.cvtColor(annotate(image, labels), cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self.writer.release()


def recognize_video(
    service: GalleryService,
    gallery: str,
    source: str | int | Path,
    *,
    principal: Principal,
    out: Path | None = None,
    events: Path | None = None,
    every: int = 1,
    unknown_after_s: float = 5.0,
    alert_unknown: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    stop: threading.Event | None = None,
    max_frames: int | None = None,
    start_frame: int = 0,
) -> VideoRunReport:
    """Every frame of ``source`` through a :class:`LiveRecognizer`; outputs closed whatever happens."""
    memory = ListSink()
    sinks: list[EventSink] = [memory]
    jsonl = JsonLinesSink(events) if events else None
    if jsonl:
        sinks.append(jsonl)
    video = VideoSource(source)
    writer = AnnotatedWriter(out, video.info) if out else None
    live = LiveRecognizer(service, gallery, principal=principal, every=every, fps=video.info.fps, sinks=sinks,
                          unknown_after_s=unknown_after_s, alert_unknown=alert_unknown, source=str(source))
    started, frames, stopped = time.perf_counter(), 0, False
    tracks: set[int] = set()
    try:
        for frame in video:
            if frame.index < start_frame:
                continue
            labels = live.process(frame)
            tracks.update(label.track for label in labels)
            if writer:
                writer.write(frame.image, labels)
            frames += 1
            if progress:
                progress(frames, video.info.frames)
            if (stop is not None and stop.is_set()) or (max_frames and frames >= max_frames):
                stopped = stop is not None and stop.is_set()
                break
    except KeyboardInterrupt:
        stopped = True
    finally:
        live.finish()
        video.close()
        if writer:
            writer.close()
        if jsonl:
            jsonl.close()
    seconds = time.perf_counter() - started
    named: dict[str, int] = {}
    for event in memory.events:
        if event["event"] == "track_identified":
            named[str(event["subject"])] = named.get(str(event["subject"]), 0) + 1
    return VideoRunReport(
        source=str(source), frames=frames, seconds=seconds, fps=frames / max(seconds, 1e-9), tracks=len(tracks),
        identified=named, events=memory.events, stopped=stopped, truncated=video.truncated,
    )
