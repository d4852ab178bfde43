"""The one liveness path of exam check-in, face login and access checks.

With the gallery's ``liveness`` off, the single photo goes to recognition as before. Otherwise
the recording (and, when active, the challenge nonce) is checked first: a failure refuses the
check and raises a ``liveness_failed`` alert; a pass hands recognition the recording's middle
face, and the liveness summary is logged with the verify/identify decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from facegate.errors import InvalidRequestError
from facegate.gallery.context import find_gallery
from facegate.gallery.inputs import ProbeInput
from facegate.gallery.liveness import Recording, check_recording, require_recording
from facegate.gallery.liveness_schemas import LivenessResult
from facegate.gallery.service import GalleryService, PhotoInput
from facegate.security import SYSTEM, Principal
from facegate.workflows.alerts import AlertCenter


@dataclass
class Gate:
    """What recognition gets (``probe``), the details to log with its decision, and the
    liveness result (None when liveness is off); ``failed`` when the check must be refused."""

    probe: ProbeInput | None
    details: dict[str, Any]
    liveness: LivenessResult | None = None
    alert_id: int | None = None

    @property
    def failed(self) -> bool:
        return self.liveness is not None and not self.liveness.passed


class LivenessGate:
    def __init__(self, gallery_service: GalleryService, alerts: AlertCenter) -> None:
        self.gs = gallery_service
        self.alerts = alerts

    def mode(self, gallery: str, principal: Principal) -> str:
        with self.gs.ctx.sessions() as session:
            return self.gs.gallery_settings(find_gallery(session, gallery, principal)).liveness

    def run(self, gallery: str, photo: PhotoInput | None, recording: Recording | None, claimed: str | None,
            what: str, request_id: str, principal: Principal, alert: bool = True) -> Gate:
        """Check liveness as the gallery says; ``what`` names the check in the alert (with
        ``alert`` False the caller raises its own, e.g. the exam's, tied to its attendance row)."""
        mode = self.mode(gallery, principal)
        if mode == "off":
            if photo is None:
                if recording is not None and recording.frames:
                    # A recording without liveness: recognise its middle frame.
                    return Gate(recording.frames[len(recording.frames) // 2], {})
                raise InvalidRequestError("send a photo (file)")
            return Gate(photo, {})
        rec = require_recording(recording, mode)
        check = check_recording(self.gs.ctx, gallery, rec, claimed, principal, request_id=request_id)
        result = check.result
        gate = Gate(check.probe, result.summary(), result)
        if not result.passed and alert:
            with self.gs.ctx.sessions.begin() as session:
                g = find_gallery(session, gallery, SYSTEM)
                raised = self.alerts.raise_alert(
                    session, g, "liveness_failed", f"{what}: liveness failed ({result.reason})",
                    subject=claimed, decision_id=result.decision_id,
                    details={"what": what, "mode": result.mode, "reason": result.reason, "passive": result.passive},
                )
                gate.alert_id = raised.id
        return gate
