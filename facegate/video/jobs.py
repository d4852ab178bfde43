"""Video jobs: an uploaded clip recognised in the background, one job at a time per server
process (the machine's cores are the limit), with progress, the run's report and its events
when done.

A job runs in the server process that took it; its state is also written to a JSON file beside
the clip under ``data_dir/video-jobs`` (at each change, progress at most twice a second), so
any process sharing the data folder answers ``GET /video-jobs/{id}`` (several workers: the
poll lands on any of them). A job whose process ended before it finished reads as failed. The
clip is kept only while its job runs; the last ``KEEP_FINISHED`` finished jobs are kept.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import socket
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
JOB_ID = re.compile(r"^[0-9a-f]{16}$")
PROGRESS_WRITE_S = 0.5
HOST = socket.gethostname()


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

    def record(self) -> dict[str, Any]:
        """What the job's file holds: its answer, and who may read it and who runs it."""
        return self.out() | {"gallery_id": self.gallery_id, "created": self.created, "host": HOST, "pid": os.getpid()}


@dataclass(frozen=True)
class StoredJob:
    """A job as read back from its file (possibly another process's)."""

    gallery: str
    gallery_id: int
    answer: dict[str, Any]

    def out(self) -> dict[str, Any]:
        return self.answer


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile by another process
        return 0.0


def _process_gone(record: dict[str, Any]) -> bool:
    """Whether the process that ran an unfinished job has ended (only known on its own host)."""
    if record.get("host") != HOST:
        return False
    try:
        os.kill(int(record.get("pid", 0)), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):  # alive under another user, or no pid: assume it runs
        return False
    return False


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
        self._write(job)
        with self._lock:
            self.jobs[job.id] = job
            self._forget_old()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="video-jobs", daemon=True)
                self._worker.start()
        self._queue.put(job.id)
        return job

    def get(self, job_id: str, *, principal: Principal) -> VideoJob | StoredJob:
        """A job of this process, else one another process sharing the data folder runs or ran."""
        job: VideoJob | StoredJob | None = self.jobs.get(job_id) or self._read(job_id)
        if job is None or (principal.gallery_id is not None and principal.gallery_id != job.gallery_id):
            raise NotFoundError(f"video job {job_id!r} not found")
        with self.service.ctx.sessions() as session:
            principal.require("recognize", find_gallery(session, job.gallery, principal))
        return job

    def _file(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def _read(self, job_id: str) -> StoredJob | None:
        if not JOB_ID.match(job_id):
            return None
        try:
            record = json.loads(self._file(job_id).read_text())
        except (OSError, ValueError):
            return None
        answer = {k: record.get(k) for k in ("id", "gallery", "state", "frames", "total_frames", "fps", "error", "report")}
        if answer["state"] in ("queued", "running") and _process_gone(record):
            answer["state"], answer["error"] = "failed", "the server process running the job ended before it finished"
        return StoredJob(gallery=str(record["gallery"]), gallery_id=int(record["gallery_id"]), answer=answer)

    def _write(self, job: VideoJob) -> None:
        """The job's state to its file, atomically (a reader never sees half a file)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            part = self.folder / f".{job.id}.{os.getpid()}.part"
            part.write_text(json.dumps(job.record(), default=float))
            os.replace(part, self._file(job.id))
        except OSError:  # the job goes on; only other processes' view of it lags
            pass

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
        self._write(job)
        started = time.perf_counter()
        written = [started]

        def progress(done: int, total: int | None) -> None:
            job.frames, job.total = done, total
            now = time.perf_counter()
            job.fps = done / max(now - started, 1e-9)
            if now - written[0] >= PROGRESS_WRITE_S:
                written[0] = now
                self._write(job)
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
            self._write(job)
            job.clip.unlink(missing_ok=True)
            if self.observe:
                self.observe(job.id, None)

    def _forget_old(self) -> None:
        """Keep the newest ``KEEP_FINISHED`` finished jobs, in memory and on disk (every
        process's: the oldest files go, whoever wrote them)."""
        finished = [j for j in self.jobs.values() if j.state in ("done", "failed")]
        for job in sorted(finished, key=lambda j: j.created)[:-KEEP_FINISHED or None]:
            del self.jobs[job.id]
        for path in sorted(self.folder.glob("*.json"), key=_mtime)[:-KEEP_FINISHED or None]:
            try:
                done = json.loads(path.read_text()).get("state") in ("done", "failed")
            except (OSError, ValueError):
                continue
            if done:
                path.unlink(missing_ok=True)
