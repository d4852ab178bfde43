"""Where a command's work happens: the local database (as the system), or a FaceGate server
through :class:`facegate.client.FaceGateClient` (``facegate --server URL --key KEY ...``).

:class:`LocalBackend` has the client's method names and signatures and returns the same
pydantic models, so a command calls ``backend().verify(...)`` and only formats the answer;
mypy checks every call against both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facegate.client.liveness import RecordingArg
from facegate.gallery.liveness_schemas import ChallengeIssued, LivenessResult
from facegate.security import SYSTEM

if TYPE_CHECKING:
    from facegate.client import PhotoArg
    from facegate.gallery.inputs import PhotoInput
    from facegate.gallery.operators import OperatorOut
    from facegate.gallery.schemas import (
        ApiKeyCreated,
        ApiKeyOut,
        DetectedFace,
        EnrollReport,
        GalleryOut,
        IdentifyResult,
        Page,
        SubjectOut,
        VerifyResult,
    )
    from facegate.gallery.service import GalleryService
    from facegate.monitoring.drift import DriftReport, DriftWindows
    from facegate.monitoring.response import OpsActionOut, ResponsePolicy, ResponseReport
    from facegate.workflows import Workflows
    from facegate.workflows.access import AccessResult
    from facegate.workflows.alerts import AlertOut
    from facegate.workflows.exam_schemas import CheckinResult, ExamSessionIn, ExamSessionOut
    from facegate.workflows.lockout import LockoutOut
    from facegate.workflows.roster import RosterReport


def as_input(photo: PhotoArg, index: int = 0) -> PhotoInput:
    """A client photo argument as the service takes it; a file keeps its path as its name."""
    from facegate.gallery.inputs import PhotoInput

    if isinstance(photo, tuple):
        return PhotoInput(name=photo[0], data=photo[1])
    if isinstance(photo, bytes):
        return PhotoInput(name=f"photo{index}", data=photo)
    return PhotoInput(name=str(photo), data=Path(photo).read_bytes())


def all_items(fetch: Callable[[str | None], Page], max_items: int | None = None) -> Iterator[Any]:
    """Every item of a paged service list (at most ``max_items``)."""
    cursor, seen = None, 0
    while True:
        page = fetch(cursor)
        for item in page.items:
            yield item
            seen += 1
            if max_items and seen >= max_items:
                return
        cursor = page.next_cursor
        if not cursor:
            return


class LocalBackend:
    """The client's methods on the local database, as the system."""

    @cached_property
    def service(self) -> GalleryService:
        from facegate.cli.common import build_service

        return build_service()

    @cached_property
    def wf(self) -> Workflows:
        from facegate.workflows import Workflows

        return Workflows(self.service)

    # -- operators ---------------------------------------------------------------------------
    def create_operator(self, username: str, password: str, role: str, gallery: str | None = None,
                        **fields: Any) -> OperatorOut:
        from pydantic import ValidationError

        from facegate.errors import InvalidRequestError
        from facegate.gallery import operators

        try:
            data = operators.OperatorIn(username=username, password=password, role=role, gallery=gallery, **fields)
        except ValidationError as exc:
            raise InvalidRequestError(
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            ) from None
        return operators.create_operator(self.service.ctx, data, SYSTEM)

    def operators(self) -> list[OperatorOut]:
        from facegate.gallery import operators

        return operators.list_operators(self.service.ctx, SYSTEM)

    def delete_operator(self, username: str) -> None:
        from facegate.gallery import operators

        operators.delete_operator(self.service.ctx, username, SYSTEM)

    def set_operator_password(self, username: str, password: str) -> None:
        from facegate.gallery import operators

        operators.set_password(self.service.ctx, username, password, SYSTEM)

    # -- galleries, subjects, keys ------------------------------------------------------------
    def create_gallery(self, name: str, model: str = "arcface", detector: str = "scrfd",
                       settings: dict[str, Any] | None = None) -> GalleryOut:
        from facegate.gallery.schemas import GallerySettings

        return self.service.create_gallery(name, model, detector, GallerySettings(**(settings or {})), principal=SYSTEM)

    def galleries(self) -> list[GalleryOut]:
        return list(all_items(lambda c: self.service.list_galleries(c, 100, principal=SYSTEM)))

    def gallery(self, name: str) -> GalleryOut:
        return self.service.get_gallery(name, principal=SYSTEM)

    def update_gallery_settings(self, name: str, **changes: Any) -> GalleryOut:
        return self.service.update_gallery_settings(name, changes, principal=SYSTEM)

    def delete_gallery(self, name: str) -> None:
        self.service.delete_gallery(name, principal=SYSTEM)

    def switch_model(self, gallery: str, model: str, photos: Mapping[str, Sequence[PhotoArg]],
                     detector: str | None = None, allow_partial: bool = False) -> dict[str, Any]:
        inputs = {s: [as_input(p, i) for i, p in enumerate(items)] for s, items in photos.items()}
        return self.service.switch_model(gallery, model, inputs, detector, allow_partial, principal=SYSTEM)

    def subjects(self, gallery: str, page_size: int = 100) -> list[SubjectOut]:
        return list(all_items(lambda c: self.service.list_subjects(gallery, c, page_size, principal=SYSTEM)))

    def subject(self, gallery: str, external_id: str) -> SubjectOut:
        return self.service.get_subject(gallery, external_id, principal=SYSTEM)

    def delete_subject(self, gallery: str, external_id: str) -> dict[str, Any]:
        erased = self.service.delete_subject(gallery, external_id, principal=SYSTEM)
        return {"deleted": external_id, "templates_erased": erased}

    def create_key(self, name: str, scopes: Sequence[str], gallery: str | None = None) -> ApiKeyCreated:
        return self.service.create_api_key(name, list(scopes), gallery, principal=SYSTEM)

    def keys(self) -> list[ApiKeyOut]:
        return self.service.list_api_keys(principal=SYSTEM)

    def revoke_key(self, key_id: int) -> None:
        self.service.revoke_api_key(key_id, principal=SYSTEM)

    # -- recognition --------------------------------------------------------------------------
    def enroll(self, gallery: str, external_id: str, photos: Sequence[PhotoArg], display_name: str | None = None,
               attributes: dict[str, Any] | None = None, face_index: int | None = None,
               create: bool = True) -> EnrollReport:
        return self.service.enroll(gallery, external_id, [as_input(p, i) for i, p in enumerate(photos)],
                                   display_name=display_name, attributes=attributes, create_subject=create,
                                   face_index=face_index, principal=SYSTEM)

    def verify(self, gallery: str, external_id: str, photo: PhotoArg, far: float | None = None) -> VerifyResult:
        return self.service.verify(gallery, external_id, as_input(photo), far=far, principal=SYSTEM)

    def identify(self, gallery: str, photo: PhotoArg, top_k: int = 5, fpir: float | None = None) -> IdentifyResult:
        return self.service.identify(gallery, as_input(photo), top_k=top_k, fpir=fpir, principal=SYSTEM)

    def detect(self, photo: PhotoArg, detector: str = "scrfd") -> list[DetectedFace]:
        return self.service.detect(as_input(photo), detector=detector, principal=SYSTEM)

    # -- exams --------------------------------------------------------------------------------
    def import_roster(self, gallery: str, roster: PhotoArg, photos: Sequence[PhotoArg] | None = None) -> RosterReport:
        """A roster CSV on disk, its photo cells relative to its folder (``photos`` is the client's)."""
        from facegate.cli.common import progress_bar
        from facegate.workflows.exam import read_roster_file

        if not isinstance(roster, (str, Path)) or photos is not None:
            raise ValueError("locally, a roster is a CSV file whose photos are named relative to it")
        rows = read_roster_file(Path(roster), self.service.settings.max_image_bytes)
        with progress_bar("importing roster", len(rows)) as advance:
            return self.wf.exams.import_roster(gallery, rows, progress=lambda n: advance(), principal=SYSTEM)

    def create_exam_session(self, gallery: str, session: ExamSessionIn | dict[str, Any]) -> ExamSessionOut:
        from facegate.workflows.exam_schemas import ExamSessionIn

        data = session if isinstance(session, ExamSessionIn) else ExamSessionIn(**session)
        return self.wf.exams.create_session(gallery, data, principal=SYSTEM)

    def exam_sessions(self, gallery: str) -> list[ExamSessionOut]:
        return self.wf.exams.list_sessions(gallery, principal=SYSTEM)

    def liveness_challenge(self, gallery: str, subject: str | None = None) -> ChallengeIssued:
        from facegate.gallery.liveness import issue_challenge

        return issue_challenge(self.service.ctx, gallery, SYSTEM, subject=subject)

    def liveness_check(self, gallery: str, recording: RecordingArg, subject: str | None = None,
                       mode: str | None = None) -> LivenessResult:
        from facegate.gallery.liveness import Recording, check_recording

        rec = Recording([as_input(f, i) for i, f in enumerate(recording.frames)], list(recording.timestamps),
                        recording.challenge)
        return check_recording(self.service.ctx, gallery, rec, subject, SYSTEM, mode=mode).result

    def checkin(self, gallery: str, code: str, student_id: str, photo: PhotoArg, kiosk: str = "") -> CheckinResult:
        return self.wf.exams.checkin(gallery, code, student_id, as_input(photo), kiosk=kiosk, principal=SYSTEM)

    def attendance_csv(self, gallery: str, code: str) -> str:
        return self.wf.exams.attendance_csv(gallery, code, principal=SYSTEM)

    # -- alerts, lockouts, access -------------------------------------------------------------
    def alerts(self, gallery: str, kind: str | None = None, unacknowledged: bool = False, subject: str | None = None,
               session_id: int | None = None, max_items: int | None = None) -> list[AlertOut]:
        def fetch(cursor: str | None) -> Page:
            return self.wf.alerts.list_alerts(gallery, cursor, min(max_items or 100, 500), kind, unacknowledged,
                                              subject, session_id, principal=SYSTEM)

        return list(all_items(fetch, max_items))

    def ack_alert(self, gallery: str, alert_id: int, by: str = "admin") -> AlertOut:
        return self.wf.alerts.acknowledge(gallery, alert_id, by, principal=SYSTEM)

    def lockouts(self, gallery: str, all: bool = False) -> list[LockoutOut]:
        return self.wf.lockout.list_lockouts(gallery, active_only=not all, principal=SYSTEM)

    def clear_lockout(self, gallery: str, identity: str, by: str = "admin") -> LockoutOut:
        return self.wf.lockout.clear(gallery, identity, by=by, principal=SYSTEM)

    def create_member(self, gallery: str, external_id: str, display_name: str = "",
                      rights: Sequence[str] = ()) -> SubjectOut:
        from facegate.workflows.access import MemberIn

        data = MemberIn(external_id=external_id, display_name=display_name, rights=list(rights))
        return self.wf.access.create_member(gallery, data, principal=SYSTEM)

    def set_rights(self, gallery: str, external_id: str, rights: Sequence[str]) -> SubjectOut:
        return self.wf.access.set_rights(gallery, external_id, list(rights), principal=SYSTEM)

    def access_check(self, gallery: str, photo: PhotoArg, right: str | None = None, where: str = "") -> AccessResult:
        return self.wf.access.check(gallery, as_input(photo), right=right, where=where, principal=SYSTEM)

    # -- monitoring ---------------------------------------------------------------------------
    def drift(self, gallery: str, windows: DriftWindows | None = None, psi_limit: float | None = None,
              p_value: float | None = None, min_samples: int | None = None) -> DriftReport:
        from facegate.monitoring.drift import DriftWindows, drift_limits, gallery_drift

        return gallery_drift(self.service, gallery, windows or DriftWindows(), drift_limits(psi_limit, p_value, min_samples),
                             principal=SYSTEM)

    def respond(self, gallery: str, windows: DriftWindows | None = None, policy: ResponsePolicy | None = None,
                apply: bool = False) -> ResponseReport:
        from facegate.monitoring.drift import DriftWindows
        from facegate.monitoring.response import ResponsePolicy, respond

        return respond(self.service, gallery, windows or DriftWindows(), policy or ResponsePolicy(), apply=apply,
                       principal=SYSTEM)

    def monitoring_actions(self, gallery: str) -> list[OpsActionOut]:
        from facegate.monitoring.response import list_actions

        return list_actions(self.service, gallery, principal=SYSTEM)

    def revert_action(self, action_id: int) -> dict[str, Any]:
        from facegate.monitoring.response import revert_action

        return revert_action(self.service, action_id, principal=SYSTEM)

    # -- video --------------------------------------------------------------------------------
    def enroll_video(self, gallery: str, external_id: str, clip: PhotoArg, display_name: str | None = None,
                     rights: str | None = None, track: int | None = None, frames: int = 5) -> dict[str, Any]:
        from facegate.video.enroll import enroll_from_video, rights_attributes

        if not isinstance(clip, (str, Path)):
            raise ValueError("locally, a clip is a file")
        report = enroll_from_video(self.service, gallery, external_id, Path(clip), principal=SYSTEM,
                                   display_name=display_name, attributes=rights_attributes(rights), track=track, k=frames)
        return report.to_dict()
