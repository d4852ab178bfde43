"""Exam check-in: roster import, exam sessions, 1:1 check-in with a 1:N cross-check,
re-verification during online exams, attendance export.

Every check is an attendance event; every irregular one (a mismatch, an unknown id, a
second check-in, a face matching another student better, a failed or missed
re-verification) also raises an alert.

The roster (CSV parsing and import) lives in :mod:`facegate.workflows.roster`, the attendance
rows and CSV in :mod:`facegate.workflows.attendance`, the request and answer shapes in
:mod:`facegate.workflows.exam_schemas`; :class:`ExamService` is the one entry point to them
all, and this module re-exports their public names.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facegate.errors import (
    ConflictError,
    InvalidRequestError,
    LockedOutError,
    NotFoundError,
    SessionClosedError,
)
from facegate.gallery.context import find_gallery
from facegate.gallery.liveness import Recording
from facegate.gallery.liveness_schemas import LivenessResult
from facegate.gallery.schemas import VerifyResult
from facegate.gallery.service import GalleryService, PhotoInput
from facegate.security import Principal
from facegate.storage.models import (
    AttendanceEvent,
    ExamSession,
    Gallery,
    ReverifyChallenge,
    as_utc,
    utcnow,
)
from facegate.workflows import attendance, reverify
from facegate.workflows.alerts import AlertCenter
from facegate.workflows.exam_schemas import (
    ChallengeOut,
    CheckinResult,
    CheckinStatus,
    CheckKind,
    ExamSessionIn,
    ExamSessionOut,
    challenge_out,
    session_out,
)
from facegate.workflows.liveness_gate import LivenessGate
from facegate.workflows.lockout import LockoutGuard
from facegate.workflows.roster import (
    ROSTER_COLUMNS,
    RosterError,
    RosterReport,
    RosterRow,
    folder_resolver,
    import_roster,
    parse_roster,
    read_roster_file,
    student_subject,
    upload_resolver,
)

__all__ = [
    "ROSTER_COLUMNS", "ChallengeOut", "CheckAlert", "CheckKind", "CheckinResult", "CheckinStatus", "ExamService",
    "ExamSessionIn", "ExamSessionOut", "RosterError", "RosterReport", "RosterRow", "decide_status",
    "folder_resolver", "parse_roster", "read_roster_file", "upload_resolver",
]


# -- check-in ----------------------------------------------------------------------------
class CheckAlert(NamedTuple):
    """An alert a check raises, once its attendance event exists to point to."""

    kind: str
    severity: str
    text: str
    details: dict[str, Any]


@dataclass(frozen=True)
class _Precheck:
    """What the read session established, carried (as ids) past the slow face verification
    into the recording transaction."""

    gallery_id: int
    exam_id: int
    locked: bool
    subject: str | None  # the enrolled subject the student id names (None: not enrolled)
    challenge_id: int | None

    @property
    def known(self) -> bool:
        return self.subject is not None


def decide_status(
    student_id: str, kiosk: str, locked: bool, verify: VerifyResult | None, already_present: bool,
    liveness: LivenessResult | None = None,
) -> tuple[CheckinStatus, str, list[CheckAlert]]:
    """The outcome of one check: status, the message the kiosk shows, the alerts to raise.

    A pure function of what was found, so the rules read in one place: ``verify`` is None
    when the id is locked or not enrolled (nothing was verified); ``already_present`` says
    whether this student already has a "present" check-in (False for a re-verification)."""
    where = kiosk or "a kiosk"
    if locked:
        return "locked", f"{student_id} is locked; call an administrator", [
            CheckAlert("locked_attempt", "warning", f"attempt on locked id {student_id} at {where}", {})
        ]
    if liveness is not None and not liveness.passed:
        return "liveness_failed", f"liveness check failed: {liveness.reason}", [
            CheckAlert("liveness_failed", "critical", f"liveness failed for {student_id} at {where}: {liveness.reason}",
                       {"liveness_decision_id": liveness.decision_id, "reason": liveness.reason})
        ]
    if verify is None:
        return "unknown_id", f"no student {student_id} is enrolled", [
            CheckAlert("unknown_id", "warning", f"unknown student id {student_id} at {where}", {})
        ]
    suspects = verify.better_matches
    listed = {"suspects": [s.model_dump() for s in suspects]}
    if verify.match and suspects:
        return "flagged", "face matches another enrolled student better; proctor must check the ID", [
            CheckAlert("impersonation", "critical",
                       (f"{student_id}'s check-in face matches {suspects[0].subject} better "
                        f"({suspects[0].score:.3f} vs {verify.score:.3f})"), listed)
        ]
    if verify.match:
        if already_present:
            return "duplicate", f"{student_id} has already checked in to this session", [
                CheckAlert("duplicate_checkin", "warning", f"second check-in of {student_id} at {where}", {})
            ]
        return "present", f"welcome, {student_id}", []
    if suspects:
        alert = CheckAlert("impersonation", "critical",
                           (f"face presented for {student_id} is enrolled student {suspects[0].subject} "
                            f"(score {suspects[0].score:.3f}; {verify.score:.3f} for {student_id})"), listed)
    else:
        alert = CheckAlert("mismatch", "warning",
                           (f"face does not match {student_id} "
                            f"(score {verify.score:.3f} < {verify.threshold.threshold:.3f})"), {})
    return "rejected", "face does not match this student id", [alert]


class ExamService:
    def __init__(self, gallery_service: GalleryService, alerts: AlertCenter, lockout: LockoutGuard) -> None:
        self.gs = gallery_service
        self.alerts = alerts
        self.lockout = lockout
        self.gate = LivenessGate(gallery_service, alerts)
        # Recording a check is read-then-write (is the student already present?); one writer
        # at a time keeps two kiosks from both admitting the same student in this process.
        self._record_lock = threading.Lock()

    # -- roster -----------------------------------------------------------------------------
    def import_roster(
        self,
        gallery: str,
        rows: list[RosterRow],
        progress: Callable[[int], None] | None = None,
        *, principal: Principal,
    ) -> RosterReport:
        """Create or update each student and enroll their photos. A bad row is reported and
        skipped; a re-import updates names and skips photos already enrolled (same bytes)."""
        return import_roster(self.gs, gallery, rows, progress, principal)

    # -- sessions ---------------------------------------------------------------------------
    def create_session(self, gallery: str, data: ExamSessionIn, *, principal: Principal) -> ExamSessionOut:
        settings = data.model_dump(exclude={"code", "course", "room", "starts_at", "ends_at", "online"})
        try:
            with self.gs.ctx.sessions.begin() as session:
                g = find_gallery(session, gallery, principal)
                principal.require("proctor", g)
                row = ExamSession(
                    gallery_id=g.id, code=data.code, course=data.course, room=data.room, starts_at=data.starts_at,
                    ends_at=data.ends_at, online=data.online, settings=settings,
                )
                session.add(row)
                session.flush()
                return session_out(row)
        except IntegrityError:
            raise ConflictError(f"exam session {data.code!r} already exists in gallery {gallery!r}") from None

    def _exam(self, session: Session, g: Gallery, code: str) -> ExamSession:
        row = session.scalar(select(ExamSession).where(ExamSession.gallery_id == g.id, ExamSession.code == code))
        if row is None:
            raise NotFoundError(f"exam session {code!r} not found in gallery {g.name!r}")
        return row

    def get_session(self, gallery: str, code: str, *, principal: Principal) -> ExamSessionOut:
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            return session_out(self._exam(session, g, code))

    def list_sessions(self, gallery: str, *, principal: Principal) -> list[ExamSessionOut]:
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            rows = session.scalars(select(ExamSession).where(ExamSession.gallery_id == g.id).order_by(ExamSession.starts_at))
            return [session_out(r) for r in rows]

    # -- check-in ---------------------------------------------------------------------------
    def checkin(
        self,
        gallery: str,
        code: str,
        student_id: str,
        photo: PhotoInput | None,
        kiosk: str = "",
        request_id: str = "",
        now: dt.datetime | None = None,
        *, principal: Principal,
        recording: Recording | None = None,
    ) -> CheckinResult:
        """Verify a student 1:1 at the start of an exam, cross-checked 1:N, and record it. With
        the gallery's liveness on, the ``recording`` is checked first (see liveness_gate)."""
        return self._check(gallery, code, student_id, photo, "checkin", kiosk, request_id, now, principal, recording)

    def reverify(
        self,
        gallery: str,
        code: str,
        student_id: str,
        photo: PhotoInput,
        kiosk: str = "remote",
        request_id: str = "",
        now: dt.datetime | None = None,
        *, principal: Principal,
    ) -> CheckinResult:
        """Answer the student's oldest due re-verification challenge of an online exam."""
        return self._check(gallery, code, student_id, photo, "reverify", kiosk, request_id, now, principal)

    def _check(
        self, gallery: str, code: str, student_id: str, photo: PhotoInput | None, kind: CheckKind, kiosk: str,
        request_id: str, now: dt.datetime | None, principal: Principal, recording: Recording | None = None,
    ) -> CheckinResult:
        """Pre-checks, then the face verification outside any transaction (it is the slow
        part), then the recording. A locked id is recorded (and alerted on), then refused."""
        now = now or utcnow()
        pre = self._precheck(gallery, code, student_id, kind, now, principal)
        verify = liveness = None
        if pre.known and not pre.locked:
            gate = self.gate.run(gallery, photo, recording, pre.subject, f"{kind} of {student_id}", request_id,
                                 principal, alert=False)
            liveness = gate.liveness
            if not gate.failed and gate.probe is not None:
                verify = self.gs.verify(gallery, pre.subject or student_id, gate.probe, request_id=request_id,
                                        crosscheck=True, principal=principal, extra_details=gate.details)
        result = self._record(pre, student_id, kind, kiosk, verify, now, liveness)
        if pre.locked:
            raise LockedOutError(f"{student_id!r} is locked after repeated failed verifications; an administrator must clear it")
        return result

    def _precheck(
        self, gallery: str, code: str, student_id: str, kind: CheckKind, now: dt.datetime, principal: Principal
    ) -> _Precheck:
        """In a read session, what is refused before the face is looked at (rights, the
        check-in window, a re-verification with nothing due), and what the recording needs:
        is the id locked, is it enrolled, which challenge is answered."""
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            exam = self._exam(session, g, code)
            opts = session_out(exam)
            opens = opts.starts_at - dt.timedelta(minutes=opts.checkin_opens_minutes)
            if not opens <= now <= opts.ends_at:
                raise SessionClosedError(
                    f"exam session {code!r} takes check-ins from {opens.isoformat(timespec='minutes')} "
                    f"to {opts.ends_at.isoformat(timespec='minutes')}; it is {now.isoformat(timespec='minutes')}"
                )
            locked = self.lockout.active(session, g, student_id) is not None
            subject = student_subject(session, g.id, student_id)
            challenge_id = None
            if kind == "reverify":
                if not exam.online:
                    raise InvalidRequestError(f"exam session {code!r} is not online: it has no re-verifications")
                challenge = reverify.due_challenge(session, exam.id, student_id, now)
                if challenge is None:
                    raise ConflictError(f"no re-verification is due for {student_id!r} in {code!r}")
                challenge_id = challenge.id
            return _Precheck(g.id, exam.id, locked, subject, challenge_id)

    def _record(
        self, pre: _Precheck, student_id: str, kind: CheckKind, kiosk: str, verify: VerifyResult | None,
        now: dt.datetime, liveness: LivenessResult | None = None,
    ) -> CheckinResult:
        """Record the check, retried once when another process recorded this student first."""
        # The read-then-write is serialised in this process by the lock; across processes the
        # partial unique index (one "present" check-in per student and session) refuses the
        # second writer, whose retry then reads the first one's row and records a duplicate.
        try:
            return self._record_once(pre, student_id, kind, kiosk, verify, now, liveness)
        except IntegrityError:
            pass
        return self._record_once(pre, student_id, kind, kiosk, verify, now, liveness)

    def _record_once(
        self, pre: _Precheck, student_id: str, kind: CheckKind, kiosk: str, verify: VerifyResult | None,
        now: dt.datetime, liveness: LivenessResult | None = None,
    ) -> CheckinResult:
        """One transaction under the record lock: the status decided against what is stored
        now, the attendance event, the challenge's outcome, the lockout count, the alerts and,
        for an online check-in, the student's random re-verifications."""
        with self._record_lock, self.gs.ctx.sessions.begin() as session:
            g = session.get(Gallery, pre.gallery_id)
            exam = session.get(ExamSession, pre.exam_id)
            if g is None or exam is None:
                raise NotFoundError("the exam session or its gallery was deleted during the check")
            suspects = verify.better_matches if verify else []
            already = (
                kind == "checkin" and verify is not None and verify.match and not suspects
                and self._present(session, exam.id, student_id)
            )
            status, message, alerts = decide_status(student_id, kiosk, pre.locked, verify, already, liveness)
            event = AttendanceEvent(
                session_id=exam.id, student_id=student_id, kind=kind, status=status, kiosk=kiosk,
                score=verify.score if verify else None, threshold=verify.threshold.threshold if verify else None,
                decision_id=verify.decision_id if verify else (liveness.decision_id if liveness else None),
                details=({"suspects": [s.model_dump() for s in suspects]} if suspects else {})
                | (liveness.summary() if liveness else {}), created_at=now,
            )
            session.add(event)
            session.flush()
            if kind == "reverify" and not pre.locked:
                alerts += self._settle_challenge(session, pre.challenge_id, event.id, status, student_id)
            failed = status in ("rejected", "unknown_id", "flagged", "liveness_failed")
            newly_locked = self.lockout.record_failure(session, g, student_id, status) if failed else False
            for alert in alerts:
                self.alerts.raise_alert(
                    session, g, alert.kind, f"[{exam.code}] {alert.text}", severity=alert.severity,
                    subject=student_id, session_id=exam.id, decision_id=event.decision_id,
                    details={"attendance_id": event.id, "kiosk": kiosk, "kind": kind, **alert.details},
                )
            if kind == "checkin" and status == "present" and exam.online:
                reverify.schedule_random(session, exam, student_id, now)
            return CheckinResult(
                session=exam.code, student_id=student_id, kind=kind, status=status,
                admitted=status == "present", message=message, score=event.score, threshold=event.threshold,
                decision_id=event.decision_id, attendance_id=event.id, alerts=[a.kind for a in alerts],
                suspects=suspects, locked=newly_locked, liveness=liveness,
            )

    @staticmethod
    def _present(session: Session, exam_id: int, student_id: str) -> bool:
        """Whether the student already has a "present" check-in in this session."""
        return session.scalar(
            select(AttendanceEvent.id).where(
                AttendanceEvent.session_id == exam_id, AttendanceEvent.student_id == student_id,
                AttendanceEvent.kind == "checkin", AttendanceEvent.status == "present",
            )
        ) is not None

    @staticmethod
    def _settle_challenge(
        session: Session, challenge_id: int | None, event_id: int, status: CheckinStatus, student_id: str
    ) -> list[CheckAlert]:
        """Mark the answered challenge passed or failed (unless another process settled it
        first: then this answer is refused); a failure is also a critical alert."""
        if challenge_id is None or not reverify.settle(session, challenge_id, "passed" if status == "present" else "failed",
                                                       event_id):
            raise ConflictError(f"the re-verification of {student_id!r} was settled meanwhile (missed or answered)")
        if status != "present":
            return [CheckAlert("reverify_failed", "critical", f"re-verification of {student_id} failed ({status})", {})]
        return []

    # -- online re-verification -------------------------------------------------------------
    def request_reverification(
        self,
        gallery: str,
        code: str,
        student_ids: list[str] | None = None,
        window_s: float | None = None,
        now: dt.datetime | None = None,
        *, principal: Principal,
    ) -> list[ChallengeOut]:
        """Ask now: the named students (default: everyone checked in) must verify within the window."""
        now = now or utcnow()
        with self.gs.ctx.sessions.begin() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("proctor", g)
            exam = self._exam(session, g, code)
            if not exam.online:
                raise InvalidRequestError(f"exam session {code!r} is not online: it has no re-verifications")
            window = window_s or session_out(exam).reverify_window_s
            if student_ids is None:
                student_ids = sorted(set(session.scalars(
                    select(AttendanceEvent.student_id).where(
                        AttendanceEvent.session_id == exam.id, AttendanceEvent.kind == "checkin",
                        AttendanceEvent.status == "present",
                    )
                )))
            rows = [
                ReverifyChallenge(session_id=exam.id, student_id=s, due_at=now,
                                  deadline=now + dt.timedelta(seconds=window), status="pending")
                for s in student_ids
            ]
            session.add_all(rows)
            session.flush()
            return [challenge_out(c) for c in rows]

    def pending_challenges(
        self, gallery: str, code: str, student_id: str, now: dt.datetime | None = None, *, principal: Principal
    ) -> list[ChallengeOut]:
        """What a student's exam client polls: challenges due now (future ones stay hidden)."""
        now = now or utcnow()
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            exam = self._exam(session, g, code)
            rows = session.scalars(
                select(ReverifyChallenge).where(
                    ReverifyChallenge.session_id == exam.id, ReverifyChallenge.student_id == student_id,
                    ReverifyChallenge.status == "pending",
                ).order_by(ReverifyChallenge.due_at)
            )
            return [challenge_out(c) for c in rows if as_utc(c.due_at) <= now <= as_utc(c.deadline)]

    def sweep_missed(self, now: dt.datetime | None = None) -> int:
        """Mark challenges past their deadline as missed, each claimed so that one server process
        records its attendance event and alert (see :mod:`facegate.workflows.reverify`)."""
        return reverify.sweep_missed(self.gs, self.alerts, now)

    # -- attendance ---------------------------------------------------------------------------
    def attendance_rows(self, gallery: str, code: str, *, principal: Principal) -> list[dict[str, Any]]:
        """One row per expected student (and any other who tried): final status and counts."""
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            exam = self._exam(session, g, code)
            return attendance.attendance_rows(session, g.id, exam.id, session_out(exam).students)

    def attendance_csv(self, gallery: str, code: str, *, principal: Principal) -> str:
        return attendance.attendance_csv(self.attendance_rows(gallery, code, principal=principal))
