"""A small typed Python client for the FaceGate REST API: one method per API operation.

    from facegate.client import FaceGateClient
    with FaceGateClient("http://127.0.0.1:8000", api_key="fg_...") as fg:
        fg.enroll("exam", "s1234", ["a.jpg", "b.jpg"], display_name="Ada")
        result = fg.verify("exam", "s1234", "live.jpg")

``FaceGateClient.ROUTES`` maps each (method, OpenAPI path) to the client method that calls it.
"""

from __future__ import annotations

from facegate.client.access import AccessMixin
from facegate.client.accounts import AccountsMixin
from facegate.client.alerts import AlertsMixin
from facegate.client.base import FaceGateAPIError, PhotoArg, RouteKey, route
from facegate.client.exams import ExamsMixin, roster_uploads
from facegate.client.galleries import GalleriesMixin
from facegate.client.liveness import LivenessMixin, RecordingArg
from facegate.client.monitoring import MonitoringMixin
from facegate.client.operators import OperatorsMixin
from facegate.client.recognition import RecognitionMixin
from facegate.client.video import VideoMixin


class FaceGateClient(
    GalleriesMixin, RecognitionMixin, ExamsMixin, AlertsMixin, AccountsMixin, AccessMixin, MonitoringMixin,
    VideoMixin, OperatorsMixin, LivenessMixin,
):
    """Every FaceGate API operation as a method returning the server's pydantic models."""


__all__ = ["FaceGateAPIError", "FaceGateClient", "PhotoArg", "RecordingArg", "RouteKey", "roster_uploads", "route"]
