"""The FastAPI application factory."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from facegate import __version__
from facegate.api import docs, errors, ratelimit
from facegate.api.admin_routes import router as admin_router
from facegate.api.body_timeout import BodyTimeoutMiddleware
from facegate.api.liveness_routes import router as liveness_router
from facegate.api.monitoring_routes import router as monitoring_router
from facegate.api.operator_routes import router as operator_router
from facegate.api.request_context import RequestContextMiddleware
from facegate.api.routes import router
from facegate.api.video_routes import router as video_router
from facegate.api.workflow_routes import router as workflow_router
from facegate.config import Settings, get_settings
from facegate.gallery.service import GalleryService
from facegate.modelops.registry import RegistryCalibrations
from facegate.monitoring.metrics import FaceGateMetrics, install_http_metrics
from facegate.video.jobs import VideoJobs
from facegate.web import install as install_web_pages
from facegate.workflows import Workflows

# ``facegate serve --workers N`` tells its worker processes their thread cap here (uvicorn
# builds each worker's app from an import string, so it cannot pass arguments).
WORKER_THREADS_ENV = "FACEGATE_SERVE_THREADS"


def service_from_settings(settings: Settings, migrate: bool) -> GalleryService:
    """The service a server builds for itself: the registry's calibrations, and the metrics
    observer when metrics are on."""
    return GalleryService(settings, migrate=migrate, calibrations=RegistryCalibrations(settings),
                          observers=[FaceGateMetrics()] if settings.metrics_enabled else [])


def worker_app() -> FastAPI:
    """One worker process of ``facegate serve --workers N`` (uvicorn's app factory): its own
    service, engines and background worker, built from the settings. The parent migrated the
    database before starting the workers, so they do not."""
    threads = int(os.environ.get(WORKER_THREADS_ENV, "0") or 0)
    return create_app(service_from_settings(get_settings(), migrate=False), worker_threads=threads or None,
                      owns_service=True)


def create_app(service: GalleryService | None = None, worker_threads: int | None = None,
               owns_service: bool = False) -> FastAPI:
    """Build the app around one service (created from the settings when not given).

    ``worker_threads`` caps the threads that run the (sync, CPU-bound) routes. A service the
    app built (or one handed over with ``owns_service``) is closed when the app stops.
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
            if owns_service:
                app.state.service.close()

    app = FastAPI(
        lifespan=lifespan,
        title="FaceGate",
        version=__version__,
        description="Face enrollment, 1:1 verification and 1:N identification with calibrated thresholds.",
        docs_url=None,  # /docs and /redoc come from facegate.api.docs: local assets, no inline script
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    if service is None:  # the server starting on its own settings: migrate, decide with the registry
        service, owns_service = service_from_settings(get_settings(), migrate=True), True
    app.state.service = service
    app.state.workflows = Workflows(app.state.service)
    app.state.metrics = None
    errors.install(app)
    docs.install(app)
    app.state.rate_limits = ratelimit.install(app, service.settings)  # inside the request id and headers
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=service.settings.body_timeout_s)

    # Outside the rate limits, whose refusals carry the request id and the headers too.
    app.add_middleware(RequestContextMiddleware)

    if service.settings.metrics_enabled:
        # The service's own metrics observer when it was built with one (counting from its
        # first decision), else a new one counting from now.
        metrics = next((o for o in service.ctx.observers if isinstance(o, FaceGateMetrics)), None)
        if metrics is None:
            metrics = FaceGateMetrics()
            service.add_observer(metrics)
        install_http_metrics(app, metrics, service.settings.metrics_token)  # outermost: it times and counts every request
        app.state.metrics = metrics
    app.state.video_jobs = VideoJobs(service, observe=_job_gauges(app.state.metrics))

    app.include_router(router)
    app.include_router(workflow_router)
    app.include_router(liveness_router)
    app.include_router(video_router)
    app.include_router(operator_router)
    app.include_router(admin_router)
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
