"""Video jobs: an uploaded clip recognised in the background, one job at a time (the machine's
cores are the limit), with progress, the run's report and its events when done.

Jobs live in the server process (a restart forgets them; their decisions and alerts are in the
database already). The clip is kept on disk under ``data_dir/video-jobs`` only while its job
runs.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from facegate.errors import FaceGateError, NotFoundError
from facegate.gallery.context import find_gallery
from facegate.gallery.service import GalleryService
from facegate.security import Principal
from facegate.video.runner import recognize_video

JobState = Literal["queued", "running", "done", "failed"]
KEEP_FINISHED = 100  # finished jobs remembered for their results


@dataclass
class VideoJob:
    id: str
    gallery: str
    gallery_id: int
    clip: Path
    every: int
    unknown_after_s: float
    alert_unknown: bool
    principal: Principal
    state: JobState = "queued"
    frames: int = 0
    total: int | None = None
    fps: float = 0.0
    error: str | None = None
    report: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)

    def out(self) -> dict[str, Any]:
        return {"id": self.id, "gallery": self.gallery, "state": self.state, "frames": self.frames,
                "total_frames": self.total, "fps": round(self.fps, 1), "error": self.error, "report": self.report}


class VideoJobs:
    """The job queue of one server; ``observe(job_id, fps)`` hears progress (metrics), with
    ``fps`` None when the job ends."""

    def __init__(self, service: GalleryService, observe: Callable[[str, float | None], None] | None = None) -> None:
        self.service = service
        self.observe = observe
        self.jobs: dict[str, VideoJob] = {}
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self.folder = service.settings.data_dir / "video-jobs"

    def submit(self, gallery: str, clip: Path, *, principal: Principal, every: int = 1, unknown_after_s: float = 5.0,
               alert_unknown: bool = False) -> VideoJob:
        """Queue a clip already saved under :attr:`folder`; checks the caller may recognise here."""
        with self.service.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
        job = VideoJob(id=secrets.token_hex(8), gallery=gallery, gallery_id=g.id, clip=clip, every=every,
                       unknown_after_s=unknown_after_s, alert_unknown=alert_unknown, principal=principal)
        with self._lock:
            self.jobs[job.id] = job
            self._forget_old()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="video-jobs", daemon=True)
                self._worker.start()
        self._queue.put(job.id)
        return job

    def get(self, job_id: str, *, principal: Principal) -> VideoJob:
        job = self.jobs.get(job_id)
        if job is None or (principal.gallery_id is not None and principal.gallery_id != job.gallery_id):
            raise NotFoundError(f"video job {job_id!r} not found")
        with self.service.ctx.sessions() as session:
            principal.require("recognize", find_gallery(session, job.gallery, principal))
        return job

    def new_clip_path(self, suffix: str) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder / f"{secrets.token_hex(8)}{suffix if suffix in ('.mp4', '.avi', '.mov', '.mkv', '.webm') else '.mp4'}"

    def _run(self) -> None:
        while True:
            job = self.jobs.get(self._queue.get())
            if job is not None:
                self._run_one(job)

    def _run_one(self, job: VideoJob) -> None:
        job.state = "running"
        started = time.perf_counter()

        def progress(done: int, total: int | None) -> None:
            job.frames, job.total = done, total
            job.fps = done / max(time.perf_counter() - started, 1e-9)
            if self.observe:
                self.observe(job.id, job.fps)

        try:
            report = recognize_video(self.service, job.gallery, job.clip, principal=job.principal, every=job.every,
                                     unknown_after_s=job.unknown_after_s, alert_unknown=job.alert_unknown,
                                     progress=progress)
            job.report, job.state = asdict(report), "done"
        except FaceGateError as exc:
            job.error, job.state = f"{exc.code}: {exc.message}", "failed"
        except Exception as exc:  # noqa: BLE001 - a job's failure is its result, not the worker's end
            job.error, job.state = f"internal error: {type(exc).__name__}: {exc}", "failed"
        finally:
            job.clip.unlink(missing_ok=True)
            if self.observe:
                self.observe(job.id, None)

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.state in ("done", "failed")]
        for job in sorted(finished, key=lambda j: j.created)[:-KEEP_FINISHED or None]:
            del self.jobs[job.id]
