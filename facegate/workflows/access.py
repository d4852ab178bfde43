"""Team access rights: members carry rights (strings such as ``lab:enter``); an access check
on a new photo identifies the main face and grants the right only to a recognised member
who holds it. Every refusal raises an alert.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from facegate.errors import NoFaceError
from facegate.gallery.context import find_gallery
from facegate.gallery.liveness import Recording
from facegate.gallery.liveness_schemas import LivenessResult
from facegate.gallery.schemas import SubjectIn, SubjectOut, SubjectUpdate
from facegate.gallery.service import GalleryService, PhotoInput
from facegate.security import SYSTEM, Principal
from facegate.workflows.alerts import AlertCenter
from facegate.workflows.liveness_gate import LivenessGate

RIGHT_PATTERN = r"^[A-Za-z0-9_.:*-]+$"


class MemberIn(BaseModel):
    external_id: str = Field(..., min_length=1, max_length=200, pattern=r"^[^/]+$")
    display_name: str = Field("", max_length=300)
    rights: list[str] = Field(default_factory=list)


class AccessResult(BaseModel):
    granted: bool
    right: str | None
    subject: str | None
    display_name: str | None
    rights: list[str]
    score: float | None
    threshold: float
    reason: str
    decision_id: int
    alert_id: int | None = None
    liveness: LivenessResult | None = None


def holds(rights: list[str], wanted: str | None) -> bool:
    """``wanted`` is held exactly, or through a wildcard such as ``lab:*`` or ``*``.
    With no right asked, any right at all grants entry."""
    if wanted is None:
        return bool(rights)
    for r in rights:
        if r == wanted or r == "*" or (r.endswith(":*") and wanted.startswith(r[:-1])):
            return True
    return False


def _validate_rights(rights: list[str]) -> list[str]:
    import re

    from facegate.errors import InvalidRequestError

    bad = [r for r in rights if not re.match(RIGHT_PATTERN, r)]
    if bad:
        raise InvalidRequestError(f"invalid right(s) {bad}: use letters, digits and : . _ - * (e.g. lab:enter)")
    return sorted(set(rights))


class AccessService:
    def __init__(self, gallery_service: GalleryService, alerts: AlertCenter) -> None:
        self.gs = gallery_service
        self.alerts = alerts
        self.gate = LivenessGate(gallery_service, alerts)

    def create_member(self, gallery: str, data: MemberIn, *, principal: Principal) -> SubjectOut:
        rights = _validate_rights(data.rights)
        return self.gs.create_subject(
            gallery, SubjectIn(external_id=data.external_id, display_name=data.display_name,
                               attributes={"role": "member", "rights": rights}), principal=principal,
        )

    def set_rights(self, gallery: str, external_id: str, rights: list[str], *, principal: Principal) -> SubjectOut:
        current = self.gs.get_subject(gallery, external_id, principal=principal)
        attributes = dict(current.attributes) | {"rights": _validate_rights(rights)}
        return self.gs.update_subject(gallery, external_id, SubjectUpdate(attributes=attributes), principal=principal)

    def check(
        self, gallery: str, photo: PhotoInput | None, right: str | None = None, request_id: str = "", where: str = "",
        *, principal: Principal, recording: Recording | None = None,
    ) -> AccessResult:
        """Who is at the door, and may they do ``right``? The largest face is the one asking.
        With the gallery's liveness on, the recording must pass it first (else refused, alerted)."""
        gate = self.gate.run(gallery, photo, recording, None, f"access to {right or 'any right'}"
                             f"{' at ' + where if where else ''}", request_id, principal)
        if gate.failed or gate.probe is None:
            live = gate.liveness
            return AccessResult(
                granted=False, right=right, subject=None, display_name=None, rights=[], score=None, threshold=0.0,
                reason=f"liveness failed: {live.reason if live else ''}", decision_id=(live.decision_id or 0) if live else 0,
                alert_id=gate.alert_id, liveness=live,
            )
        result = self.gs.identify(gallery, gate.probe, top_k=3, request_id=request_id, principal=principal,
                                  extra_details=gate.details)
        face = result.main_face()
        if face is None:
            raise NoFaceError("no face found in the photo; the person must face the camera")
        threshold = result.threshold.threshold
        rights: list[str] = []
        if face.decision == "match" and face.subject is not None:
            rights = list(self.gs.get_subject(gallery, face.subject, principal=SYSTEM).attributes.get("rights", []))
            granted = holds(rights, right)
            reason = "granted" if granted else f"{face.subject} lacks the right {right or '(any)'}"
        else:
            granted, reason = False, "face not recognised (unknown person)"
        alert_id = None
        if not granted:
            with self.gs.ctx.sessions.begin() as session:
                g = find_gallery(session, gallery, SYSTEM)
                alert = self.alerts.raise_alert(
                    session, g, "access_denied", f"access to {right or 'any right'}{' at ' + where if where else ''} "
                    f"refused: {reason}", subject=face.subject, decision_id=result.decision_id,
                    details={"right": right, "where": where, "score": face.score, "threshold": threshold},
                )
                alert_id = alert.id
        return AccessResult(
            granted=granted, right=right, subject=face.subject, display_name=face.display_name, rights=rights,
            score=face.score, threshold=threshold, reason=reason, decision_id=result.decision_id, alert_id=alert_id,
            liveness=gate.liveness,
        )
