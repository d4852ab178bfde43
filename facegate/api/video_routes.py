"""Video routes: enroll a person from an uploaded clip, recognise a clip as a background job,
and a WebSocket that names the faces of live frames sent by a browser or a kiosk."""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from facegate.api.deps import PrincipalDep, ServiceDep, websocket_principal
from facegate.errors import FaceGateError, InvalidRequestError, VideoTooLargeError
from facegate.imaging import decode_image
from facegate.video.enroll import enroll_from_video, rights_attributes
from facegate.video.jobs import VideoJobs
from facegate.video.pipeline import LiveRecognizer
from facegate.video.sources import Frame

router = APIRouter(prefix="/api/v1", tags=["video"])
G = "/galleries/{gallery}"


def save_clip(upload: UploadFile, path: Path, limit: int) -> Path:
    """Stream an uploaded clip to ``path``, refusing it past ``limit`` bytes (nothing kept then)."""
    size = 0
    upload.file.seek(0)
    with path.open("wb") as out:
        while chunk := upload.file.read(1 << 20):
            size += len(chunk)
            if size > limit:
                out.close()
                path.unlink(missing_ok=True)
                raise VideoTooLargeError(f"clip {upload.filename or ''!r} is over {limit // (1024 * 1024)} MiB "
                                         "(FACEGATE_MAX_VIDEO_BYTES)")
            out.write(chunk)
    return path


def _suffix(upload: UploadFile) -> str:
    return Path(upload.filename or "clip.mp4").suffix.lower() or ".mp4"


def video_jobs(request: Request) -> VideoJobs:
    return request.app.state.video_jobs


@router.post(G + "/subjects/{external_id}/enroll-video")
def enroll_video(
    request: Request,
    gallery: str,
    external_id: str,
    service: ServiceDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="A short clip of the person (mp4, webm, ...).")],
    display_name: Annotated[str | None, Form()] = None,
    rights: Annotated[str | None, Form(description="Access rights, comma-separated (lab:enter,...).")] = None,
    track: Annotated[int | None, Form(description="The track to enroll when several people are in view.")] = None,
    frames: Annotated[int, Form(ge=1, le=20, description="How many frames to enroll.")] = 5,
) -> dict[str, Any]:
    """Track the clip's one person and enroll K good, different-looking frames through the
    normal enrollment rules; a clip with no usable face or several people is refused."""
    attributes = rights_attributes(rights)
    with tempfile.TemporaryDirectory() as tmp:
        clip = save_clip(file, Path(tmp) / f"{Path(file.filename or 'clip').stem}{_suffix(file)}",
                         service.settings.max_video_bytes)
        report = enroll_from_video(service, gallery, external_id, clip, principal=principal,
                                   display_name=display_name, attributes=attributes, track=track, k=frames)
    return report.to_dict()


@router.post(G + "/video-jobs", status_code=202)
def submit_video_job(
    request: Request,
    gallery: str,
    service: ServiceDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="The clip to recognise.")],
    every: Annotated[int, Form(ge=1, le=30, description="Detect on every Nth frame.")] = 1,
    unknown_after_s: Annotated[float, Form(ge=0, le=3600)] = 5.0,
    alert_unknown: Annotated[bool, Form(description="An access point: unknown faces raise alerts.")] = False,
) -> JSONResponse:
    """Queue a recognition job; poll ``GET /api/v1/video-jobs/{id}`` for progress and the result."""
    jobs = video_jobs(request)
    clip = save_clip(file, jobs.new_clip_path(_suffix(file)), service.settings.max_video_bytes)
    try:
        job = jobs.submit(gallery, clip, principal=principal, every=every, unknown_after_s=unknown_after_s,
                          alert_unknown=alert_unknown)
    except FaceGateError:
        clip.unlink(missing_ok=True)
        raise
    return JSONResponse(job.out(), status_code=202, headers={"Location": f"/api/v1/video-jobs/{job.id}"})


@router.get("/video-jobs/{job_id}")
def get_video_job(request: Request, job_id: str, principal: PrincipalDep) -> dict[str, Any]:
    """A video job's state and progress, and its result once done (who was seen, when, events)."""
    return video_jobs(request).get(job_id, principal=principal).out()


@router.websocket(G + "/live")
async def live(websocket: WebSocket, gallery: str) -> None:
    """Send each frame as a binary message (JPEG or PNG); each answer is JSON: the frame's faces
    with box, track, state, subject, name and score. The API key comes in the ``X-API-Key``
    header or the ``api_key`` query parameter (browsers cannot set headers on a WebSocket), or a
    signed-in operator's ``fg_session`` cookie from a page of this same server."""
    service = websocket.app.state.service
    await websocket.accept()
    try:
        principal = websocket_principal(websocket, service)
        every = int(websocket.query_params.get("every", "1"))
        recognizer = await run_in_threadpool(LiveRecognizer, service, gallery, principal=principal, every=every,
                                             fps=float(websocket.query_params.get("fps", "15")), source="live")
    except (FaceGateError, ValueError) as exc:
        detail = exc.message if isinstance(exc, FaceGateError) else f"bad parameter: {exc}"
        await websocket.send_json({"error": getattr(exc, "code", "invalid_request"), "detail": detail})
        await websocket.close(code=1008)
        return
    metrics = getattr(websocket.app.state, "metrics", None)
    source = f"live-{id(recognizer):x}"
    index = 0
    try:
        while True:
            data = await websocket.receive_bytes()
            try:
                labels = await run_in_threadpool(_frame, recognizer, service, data, index)
            except FaceGateError as exc:
                await websocket.send_json({"frame": index, "error": exc.code, "detail": exc.message})
                continue
            await websocket.send_text(json.dumps({"frame": index, "faces": [asdict(label) for label in labels]}))
            if metrics:
                metrics.observe_video(source, recognizer.fps_measured, len(recognizer.tracker.tracks))
            index += 1
    except WebSocketDisconnect:
        pass
    finally:
        await run_in_threadpool(recognizer.finish)
        if metrics:
            metrics.video_ended(source)


def _frame(recognizer: LiveRecognizer, service: Any, data: bytes, index: int) -> list[Any]:
    if not data:
        raise InvalidRequestError("empty frame")
    image = decode_image(data, service.ctx.image_limits, name=f"frame {index}")
    return recognizer.process(Frame(index=index, time_s=index / recognizer.fps, image=image))

