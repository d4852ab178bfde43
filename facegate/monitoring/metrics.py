"""Prometheus metrics for the API and for every decision the service makes.

Each :class:`FaceGateMetrics` owns its own ``CollectorRegistry`` rather than using the
process-global one: a test run (or a process) may build several services and apps, and the
global registry refuses a second collector with the same name. The service holds one
instance; the app serves that instance's registry at ``/metrics``.

Decisions are counted in ``GalleryService._log``, the one place every verify, identify and
enroll passes, so the counts match the decision log exactly.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import MutableMapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Cosine similarity lives in [-1, 1]; thresholds in use sit between 0.2 and 0.6.
SCORE_BUCKETS = (-0.2, 0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
QUALITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RECOGNITION_KINDS = ("verify", "identify")


class FaceGateMetrics:
    """The metric families of one service (and the app in front of it)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "facegate_http_requests", "HTTP requests by method, route template and status.",
            ["method", "route", "status"], registry=r,
        )
        self.http_latency = Histogram(
            "facegate_http_request_duration_seconds", "HTTP request latency by route template.",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.decisions = Counter(
            "facegate_decisions", "Logged decisions by kind (verify, identify, enroll, ...) and outcome.",
            ["kind", "outcome"], registry=r,
        )
        self.scores = Histogram(
            "facegate_decision_score", "Similarity score of verify / identify decisions.",
            ["kind"], buckets=SCORE_BUCKETS, registry=r,
        )
        self.quality = Histogram(
            "facegate_probe_quality", "Quality score of the probe face of verify / identify decisions.",
            ["kind"], buckets=QUALITY_BUCKETS, registry=r,
        )
        self.probes = Counter(
            "facegate_recognition_probes", "Verify / identify requests that reached face detection.",
            ["kind"], registry=r,
        )
        self.no_face = Counter(
            "facegate_recognition_no_face", "Verify / identify requests where no face was found "
            "(no-face rate = this / facegate_recognition_probes_total).", ["kind"], registry=r,
        )
        self.enroll_photos = Counter(
            "facegate_enroll_photos", "Enrollment photos by result (accepted, rejected, skipped).",
            ["status"], registry=r,
        )
        self.video_fps = Gauge(
            "facegate_video_fps", "Frames per second of each running video (a job id or a live session).",
            ["source"], registry=r,
        )
        self.video_tracks = Gauge(
            "facegate_video_tracks", "Faces tracked right now in each running video.", ["source"], registry=r,
        )

    def observe_video(self, source: str, fps: float, tracks: int | None) -> None:
        """The running figures of one video; never raises."""
        try:
            self.video_fps.labels(source).set(fps)
            if tracks is not None:
                self.video_tracks.labels(source).set(tracks)
        except Exception:  # noqa: BLE001 - metrics must not fail a video
            pass

    def video_ended(self, source: str) -> None:
        for gauge in (self.video_fps, self.video_tracks):
            try:
                gauge.remove(source)
            except KeyError:
                pass

    # -- decisions ------------------------------------------------------------------------
    def observe_decision(
        self, kind: str, outcome: str, score: float | None = None, quality: float | None = None,
        details: dict | None = None,
    ) -> None:
        """Count one logged decision; never raises (metrics must not fail a request)."""
        try:
            self.decisions.labels(kind, outcome).inc()
            if kind in RECOGNITION_KINDS:
                self.probes.labels(kind).inc()
                if outcome == "no_face":
                    self.no_face.labels(kind).inc()
                if score is not None:
                    self.scores.labels(kind).observe(float(score))
                if quality is not None:
                    self.quality.labels(kind).observe(float(quality))
            elif kind == "enroll" and details:
                for status in ("accepted", "rejected", "skipped"):
                    count = int(details.get(status, 0) or 0)
                    if count:
                        self.enroll_photos.labels(status).inc(count)
        except Exception:  # pragma: no cover - defensive: a metric bug must not lose a decision
            pass

    # -- HTTP -----------------------------------------------------------------------------
    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_latency.labels(method, route).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format Prometheus scrapes, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an address (a unix socket, a test transport): not known to be local
        return False


def route_template(scope: MutableMapping[str, Any]) -> str:
    """The matched route's path template (``/api/v1/galleries/{gallery}``), never the raw path,
    so label cardinality stays bounded; requests that matched no route share one label."""
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path) if path else "unmatched"


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by method, route template and status, from its start
    to its last byte. A plain ASGI wrapper (see facegate.api.request_context for why); a request
    that ends in an exception counts as a 500."""

    def __init__(self, app: Any, metrics: FaceGateMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def noting_send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            self.metrics.observe_request(scope["method"], route_template(scope), status, time.perf_counter() - start)


def install_http_metrics(app: Any, metrics: FaceGateMetrics, token: str = "") -> None:
    """Add the request-counting middleware and ``GET /metrics``. Who may scrape: with
    ``FACEGATE_METRICS_TOKEN`` set, whoever sends it as a bearer token (Prometheus's
    ``authorization`` setting); without it, only clients on this machine (loopback). Turn the
    whole thing off with ``FACEGATE_METRICS_ENABLED=false``."""
    from starlette.requests import Request
    from starlette.responses import Response


    async def metrics_endpoint(request: Request) -> Response:
        if token:
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                return Response("send the metrics token as 'Authorization: Bearer <token>'\n", status_code=401,
                                headers={"WWW-Authenticate": "Bearer"}, media_type="text/plain")
        elif not _loopback(request.client.host if request.client else ""):
            return Response("metrics are served to this machine only; set FACEGATE_METRICS_TOKEN to scrape "
                            "from elsewhere\n", status_code=403, media_type="text/plain")
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
