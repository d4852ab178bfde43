"""The FastAPI application factory."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from facegate import __version__
from facegate.api import errors
from facegate.api.monitoring_routes import router as monitoring_router
from facegate.api.routes import router
from facegate.api.video_routes import router as video_router
from facegate.api.workflow_routes import router as workflow_router
from facegate.config import get_settings
from facegate.gallery.service import GalleryService
from facegate.modelops.registry import RegistryCalibrations
from facegate.monitoring.metrics import FaceGateMetrics, install_http_metrics
from facegate.video.jobs import VideoJobs
from facegate.web import install as install_web_pages
from facegate.workflows import Workflows


def create_app(service: GalleryService | None = None, worker_threads: int | None = None) -> FastAPI:
    """Build the app around one service (created from the settings when not given).

    ``worker_threads`` caps the threads that run the (sync, CPU-bound) routes.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if worker_threads:
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads
        # Webhook delivery and missed re-verifications run beside the server, in this process.
        worker = app.state.workflows.background_worker() if app.state.service.settings.background_worker else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="FaceGate",
        version=__version__,
        description="Face enrollment, 1:1 verification and 1:N identification with calibrated thresholds.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    if service is None:  # the server starting on its own settings: migrate, decide with the registry
        settings = get_settings()
        service = GalleryService(settings, migrate=True, calibrations=RegistryCalibrations(settings),
                                 observers=[FaceGateMetrics()] if settings.metrics_enabled else [])
    app.state.service = service
    app.state.workflows = Workflows(app.state.service)
    app.state.metrics = None
    errors.install(app)

    @app.middleware("http")
    async def request_id(request: Request, call_next):
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid[:64]
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    if service.settings.metrics_enabled:
        # The service's own metrics observer when it was built with one (counting from its
        # first decision), else a new one counting from now.
        metrics = next((o for o in service.ctx.observers if isinstance(o, FaceGateMetrics)), None)
        if metrics is None:
            metrics = FaceGateMetrics()
            service.add_observer(metrics)
        install_http_metrics(app, metrics)  # outermost: it times and counts every request
        app.state.metrics = metrics
    app.state.video_jobs = VideoJobs(service, observe=_job_gauges(app.state.metrics))

    app.include_router(router)
    app.include_router(workflow_router)
    app.include_router(video_router)
    install_web_pages(app)
    app.include_router(monitoring_router)
    return app


def _job_gauges(metrics: FaceGateMetrics | None) -> Callable[[str, float | None], None] | None:
    """Video jobs' frames per second as a gauge per job, removed when the job ends."""
    if metrics is None:
        return None

    def observe(job_id: str, fps: float | None) -> None:
        if fps is None:
            metrics.video_ended(job_id)
        else:
            metrics.observe_video(job_id, fps, None)

    return observe
