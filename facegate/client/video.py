"""Video: enroll from a clip, recognition jobs, and the live WebSocket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

from facegate.client.base import API, ClientBase, PhotoArg, form, photo_file, route

G = API + "/galleries/{gallery}"
FINISHED = {"done", "failed", "cancelled", "error"}


class VideoMixin(ClientBase):
    @route("POST", G + "/subjects/{external_id}/enroll-video")
    def enroll_video(self, gallery: str, external_id: str, clip: PhotoArg, display_name: str | None = None,
                     rights: str | None = None, track: int | None = None, frames: int = 5) -> dict[str, Any]:
        """Enroll K good frames of the clip's one person; the report as a dict (``enrollment`` inside)."""
        url = self._url(G + "/subjects/{external_id}/enroll-video", gallery=gallery, external_id=external_id)
        data = form(display_name=display_name, rights=rights, track=track, frames=frames)
        return self._call("POST", url, files={"file": photo_file(clip)}, data=data)

    @route("POST", G + "/video-jobs")
    def submit_video_job(self, gallery: str, clip: PhotoArg, every: int = 1, unknown_after_s: float = 5.0,
                         alert_unknown: bool = False) -> dict[str, Any]:
        """Queue a recognition job (202); poll :meth:`video_job` with its ``id``."""
        url = self._url(G + "/video-jobs", gallery=gallery)
        data = form(every=every, unknown_after_s=unknown_after_s, alert_unknown=alert_unknown)
        return self._call("POST", url, files={"file": photo_file(clip)}, data=data)

    @route("GET", API + "/video-jobs/{job_id}")
    def video_job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", self._url(API + "/video-jobs/{job_id}", job_id=job_id))

    def wait_video_job(self, job_id: str, timeout: float = 600.0, poll_s: float = 0.5) -> dict[str, Any]:
        """Poll a job until it has finished (or ``timeout`` seconds pass: TimeoutError)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.video_job(job_id)
            if job.get("state", job.get("status")) in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"video job {job_id} still {job.get('state', job.get('status'))} after {timeout} s")
            time.sleep(poll_s)

    def live(self, gallery: str, frames: Iterable[bytes], every: int = 1, fps: float = 15.0) -> Iterator[dict[str, Any]]:
        """Send encoded frames (JPEG/PNG bytes) over the live WebSocket; yields each frame's answer
        (``{"frame", "faces"}`` or ``{"error", "detail"}``). Not an OpenAPI operation."""
        from websockets.sync.client import connect

        url = self.base_url.replace("http", "ws", 1) + self._url(G + "/live", gallery=gallery)
        url += "?" + urlencode({"every": every, "fps": fps})
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        with connect(url, additional_headers=headers) as socket:
            for frame in frames:
                socket.send(frame)
                answer = json.loads(socket.recv())
                yield answer
                if "error" in answer and "frame" not in answer:
                    return
