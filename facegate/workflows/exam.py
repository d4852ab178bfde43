"""Exam check-in: roster import, exam sessions, 1:1 check-in with a 1:N cross-check,
re-verification during online exams, attendance export.

Every check is an attendance event; every irregular one (a mismatch, an unknown id, a
second check-in, a face matching another student better, a failed or missed
re-verification) also raises an alert.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from facegate.errors import ConflictError, InvalidRequestError, LockedOutError, NotFoundError, SessionClosedError
from facegate.evaluation.datasets import IMAGE_SUFFIXES
from facegate.gallery.schemas import Candidate, SubjectIn, SubjectUpdate
from facegate.gallery.context import find_gallery
from facegate.gallery.service import GalleryService, PhotoInput
from facegate.security import Principal
from facegate.storage.models import (
    Alert,
    AttendanceEvent,
    ExamSession,
    Gallery,
    ReverifyChallenge,
    Subject,
    as_utc,
    utcnow,
)
from facegate.workflows.alerts import AlertCenter
from facegate.workflows.lockout import LockoutGuard

ROSTER_COLUMNS = ("student_id", "name", "photo")


# -- roster ------------------------------------------------------------------------------------
@dataclass
class RosterRow:
    line: int
    student_id: str
    name: str
    photos: list[PhotoInput] = field(default_factory=list)
    error: str = ""


class RosterError(BaseModel):
    line: int
    student_id: str
    code: str
    message: str


class RosterReport(BaseModel):
    rows: int
    students_created: int
    students_updated: int
    photos_accepted: int
    photos_skipped: int
    photos_rejected: int
    errors: list[RosterError]


def parse_roster(text: str, resolve: Callable[[str], list[PhotoInput]]) -> list[RosterRow]:
    """Rows of a ``student_id,name,photo`` CSV; ``resolve`` turns a photo cell (a file or a
    folder) into photos. A bad row carries its error instead of stopping the import."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in ROSTER_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidRequestError(f"roster CSV lacks the column(s) {', '.join(missing)}; expected header: student_id,name,photo")
    rows: list[RosterRow] = []
    for row in reader:
        line = reader.line_num
        student_id = (row.get("student_id") or "").strip()
        item = RosterRow(line=line, student_id=student_id, name=(row.get("name") or "").strip())
        photo_cell = (row.get("photo") or "").strip()
        if not student_id or "/" in student_id:
            item.error = "student_id is empty or contains '/'"
        elif not photo_cell:
            item.error = "no photo given"
        else:
            try:
                item.photos = resolve(photo_cell)
                if not item.photos:
                    item.error = f"no photo found at {photo_cell!r}"
            except (OSError, FileNotFoundError, InvalidRequestError) as exc:
                item.error = str(exc)
        rows.append(item)
    return rows


def folder_resolver(base: Path, max_bytes: int) -> Callable[[str], list[PhotoInput]]:
    """Photo cells as paths relative to the CSV's folder: one file, or every image in a folder."""

    def read(path: Path) -> PhotoInput:
        if path.stat().st_size > max_bytes:
            raise InvalidRequestError(f"{path} is over the {max_bytes // (1024 * 1024)} MiB limit")
        return PhotoInput(name=str(path), data=path.read_bytes())

    def resolve(cell: str) -> list[PhotoInput]:
        path = (base / cell).resolve()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | {""})
            return [read(p) for p in files]
        if not path.exists():
            raise InvalidRequestError(f"photo {cell!r} not found (looked at {path})")
        return [read(path)]

    return resolve


def upload_resolver(uploads: list[PhotoInput]) -> Callable[[str], list[PhotoInput]]:
    """Photo cells naming uploaded files: an exact file name, or a folder prefix ``dir/``."""
    by_name = {u.name: u for u in uploads}

    def resolve(cell: str) -> list[PhotoInput]:
        if cell in by_name:
            return [by_name[cell]]
        prefix = cell.rstrip("/") + "/"
        found = [u for name, u in sorted(by_name.items()) if name.startswith(prefix)]
        if not found:
            raise InvalidRequestError(f"photo {cell!r} is not among the uploaded files")
        return found

    return resolve


# -- sessions and check-in -----------------------------------------------------------------
class ExamSessionIn(BaseModel):
    code: str = Field(..., min_length=1, max_length=100, pattern=r"^[^/]+$")
    course: str = Field(..., min_length=1, max_length=200)
    room: str = Field("", max_length=200)
    starts_at: dt.datetime
    ends_at: dt.datetime
    online: bool = False
    students: list[str] | None = Field(None, description="Expected students; default: every subject of the gallery.")
    checkin_opens_minutes: float = Field(30.0, ge=0, description="Check-in opens this long before the start.")
    reverify_random: int = Field(0, ge=0, le=20, description="Online: random re-verifications per student.")
    reverify_window_s: float = Field(120.0, gt=0, description="Online: time a student has to answer one.")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)

    @model_validator(mode="after")
    def _order(self) -> "ExamSessionIn":
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ExamSessionOut(ExamSessionIn):
    id: int
    created_at: dt.datetime


CheckinStatus = Literal["present", "duplicate", "flagged", "rejected", "unknown_id", "locked"]


class CheckinResult(BaseModel):
    """What the kiosk shows: admitted or not, and why."""

    session: str
    student_id: str
    kind: Literal["checkin", "reverify"]
    status: CheckinStatus
    admitted: bool
    message: str
    score: float | None = None
    threshold: float | None = None
    decision_id: int | None = None
    attendance_id: int
    alerts: list[str] = Field(default_factory=list)
    suspects: list[Candidate] = Field(default_factory=list, description="Other students this face matches better.")
    locked: bool = False


class ChallengeOut(BaseModel):
    id: int
    student_id: str
    due_at: dt.datetime
    deadline: dt.datetime
    status: str


def _session_out(row: ExamSession) -> ExamSessionOut:
    extra = row.settings or {}
    return ExamSessionOut(
        id=row.id, code=row.code, course=row.course, room=row.room, starts_at=as_utc(row.starts_at),
        ends_at=as_utc(row.ends_at), online=row.online, created_at=row.created_at, **extra,
    )


def _challenge_out(c: ReverifyChallenge) -> ChallengeOut:
    return ChallengeOut(id=c.id, student_id=c.student_id, due_at=as_utc(c.due_at), deadline=as_utc(c.deadline), status=c.status)


class ExamService:
    def __init__(self, gallery_service: GalleryService, alerts: AlertCenter, lockout: LockoutGuard) -> None:
        self.gs = gallery_service
        self.alerts = alerts
        self.lockout = lockout
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
        errors: list[RosterError] = []
        created = updated = accepted = skipped = rejected = 0
        for row in rows:
            try:
                if row.error:
                    errors.append(RosterError(line=row.line, student_id=row.student_id, code="invalid_row", message=row.error))
                    continue
                try:
                    self.gs.create_subject(
                        gallery, SubjectIn(external_id=row.student_id, display_name=row.name, attributes={"role": "student"}),
                        principal=principal,
                    )
                    created += 1
                except ConflictError:
                    self.gs.update_subject(gallery, row.student_id, SubjectUpdate(display_name=row.name), principal=principal)
                    updated += 1
                report = self.gs.enroll(gallery, row.student_id, row.photos, create_subject=False, principal=principal)
                accepted += report.accepted
                skipped += report.skipped
                rejected += report.rejected
                for item in report.items:
                    if item.status == "rejected":
                        errors.append(RosterError(line=row.line, student_id=row.student_id, code=item.code or "rejected",
                                                  message=f"{item.image}: {item.reason}"))
            finally:
                if progress:
                    progress(1)
        return RosterReport(
            rows=len(rows), students_created=created, students_updated=updated, photos_accepted=accepted,
            photos_skipped=skipped, photos_rejected=rejected, errors=errors,
        )

    # -- sessions ---------------------------------------------------------------------------
    def create_session(self, gallery: str, data: ExamSessionIn, *, principal: Principal) -> ExamSessionOut:
        settings = data.model_dump(exclude={"code", "course", "room", "starts_at", "ends_at", "online"})
        try:
            with self.gs.ctx.sessions.begin() as session:
                g = find_gallery(session, gallery, principal)
                principal.require("admin", g)
                row = ExamSession(
                    gallery_id=g.id, code=data.code, course=data.course, room=data.room, starts_at=data.starts_at,
                    ends_at=data.ends_at, online=data.online, settings=settings,
                )
                session.add(row)
                session.flush()
                return _session_out(row)
        except IntegrityError:
            raise ConflictError(f"exam session {data.code!r} already exists in gallery {gallery!r}") from None

    def _exam(self, session, g: Gallery, code: str) -> ExamSession:
        row = session.scalar(select(ExamSession).where(ExamSession.gallery_id == g.id, ExamSession.code == code))
        if row is None:
            raise NotFoundError(f"exam session {code!r} not found in gallery {g.name!r}")
        return row

    def get_session(self, gallery: str, code: str, *, principal: Principal) -> ExamSessionOut:
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            return _session_out(self._exam(session, g, code))

    def list_sessions(self, gallery: str, *, principal: Principal) -> list[ExamSessionOut]:
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            rows = session.scalars(select(ExamSession).where(ExamSession.gallery_id == g.id).order_by(ExamSession.starts_at))
            return [_session_out(r) for r in rows]

    # -- check-in ---------------------------------------------------------------------------
    def checkin(
        self,
        gallery: str,
        code: str,
        student_id: str,
        photo: PhotoInput,
        kiosk: str = "",
        request_id: str = "",
        now: dt.datetime | None = None,
        *, principal: Principal,
    ) -> CheckinResult:
        """Verify a student 1:1 at the start of an exam, cross-checked 1:N, and record it."""
        return self._check(gallery, code, student_id, photo, "checkin", kiosk, request_id, now, principal)

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

    def _check(self, gallery, code, student_id, photo, kind, kiosk, request_id, now, principal) -> CheckinResult:
        now = now or utcnow()
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            exam = self._exam(session, g, code)
            opts = _session_out(exam)
            opens = opts.starts_at - dt.timedelta(minutes=opts.checkin_opens_minutes)
            if not opens <= now <= opts.ends_at:
                raise SessionClosedError(
                    f"exam session {code!r} takes check-ins from {opens.isoformat(timespec='minutes')} "
                    f"to {opts.ends_at.isoformat(timespec='minutes')}; it is {now.isoformat(timespec='minutes')}"
                )
            locked = self.lockout.active(session, g, student_id) is not None
            known = session.scalar(
                select(Subject.id).where(Subject.gallery_id == g.id, Subject.external_id == student_id)
            ) is not None
            challenge_id = None
            if kind == "reverify":
                if not exam.online:
                    raise InvalidRequestError(f"exam session {code!r} is not online: it has no re-verifications")
                challenge = self._due_challenge(session, exam.id, student_id, now)
                if challenge is None:
                    raise ConflictError(f"no re-verification is due for {student_id!r} in {code!r}")
                challenge_id = challenge.id

        verify = None
        if known and not locked:
            verify = self.gs.verify(gallery, student_id, photo, request_id=request_id, crosscheck=True, principal=principal)

        # The read-then-write is serialised in this process by the lock; across processes the
        # partial unique index (one "present" check-in per student and session) refuses the
        # second writer, whose retry then reads the first one's row and records a duplicate.
        gallery_id, exam_id = g.id, exam.id
        for attempt in (0, 1):
            try:
                with self._record_lock, self.gs.ctx.sessions.begin() as session:
                    g = session.get(Gallery, gallery_id)
                    exam = session.get(ExamSession, exam_id)
                    alerts: list[tuple[str, str, str, dict]] = []  # kind, severity, message, details
                    suspects = verify.better_matches if verify else []
                    if locked:
                        status, message = "locked", f"{student_id} is locked; call an administrator"
                        alerts.append(("locked_attempt", "warning", f"attempt on locked id {student_id} at {kiosk or 'a kiosk'}", {}))
                    elif not known:
                        status, message = "unknown_id", f"no student {student_id} is enrolled"
                        alerts.append(("unknown_id", "warning", f"unknown student id {student_id} at {kiosk or 'a kiosk'}", {}))
                    elif verify.match and suspects:
                        status, message = "flagged", "face matches another enrolled student better; proctor must check the ID"
                        alerts.append(("impersonation", "critical",
                                       f"{student_id}'s check-in face matches {suspects[0].subject} better "
                                       f"({suspects[0].score:.3f} vs {verify.score:.3f})",
                                       {"suspects": [s.model_dump() for s in suspects]}))
                    elif verify.match:
                        already = kind == "checkin" and session.scalar(
                            select(AttendanceEvent.id).where(
                                AttendanceEvent.session_id == exam.id, AttendanceEvent.student_id == student_id,
                                AttendanceEvent.kind == "checkin", AttendanceEvent.status == "present",
                            )
                        ) is not None
                        if already:
                            status, message = "duplicate", f"{student_id} has already checked in to this session"
                            alerts.append(("duplicate_checkin", "warning", f"second check-in of {student_id} at {kiosk or 'a kiosk'}", {}))
                        else:
                            status, message = "present", f"welcome, {student_id}"
                    else:
                        status, message = "rejected", "face does not match this student id"
                        if suspects:
                            alerts.append(("impersonation", "critical",
                                           f"face presented for {student_id} is enrolled student {suspects[0].subject} "
                                           f"(score {suspects[0].score:.3f}; {verify.score:.3f} for {student_id})",
                                           {"suspects": [s.model_dump() for s in suspects]}))
                        else:
                            alerts.append(("mismatch", "warning",
                                           f"face does not match {student_id} (score {verify.score:.3f} < {verify.threshold.threshold:.3f})", {}))
                    event = AttendanceEvent(
                        session_id=exam.id, student_id=student_id, kind=kind, status=status, kiosk=kiosk,
                        score=verify.score if verify else None, threshold=verify.threshold.threshold if verify else None,
                        decision_id=verify.decision_id if verify else None,
                        details={"suspects": [s.model_dump() for s in suspects]} if suspects else {}, created_at=now,
                    )
                    session.add(event)
                    session.flush()
                    if kind == "reverify" and not locked:
                        challenge = session.get(ReverifyChallenge, challenge_id)
                        challenge.status = "passed" if status == "present" else "failed"
                        challenge.attendance_id = event.id
                        if status != "present":
                            alerts.append(("reverify_failed", "critical", f"re-verification of {student_id} failed ({status})", {}))
                    failed = status in ("rejected", "unknown_id", "flagged")
                    newly_locked = self.lockout.record_failure(session, g, student_id, status) if failed else False
                    for alert_kind, severity, text, details in alerts:
                        self.alerts.raise_alert(
                            session, g, alert_kind, f"[{exam.code}] {text}", severity=severity, subject=student_id,
                            session_id=exam.id, decision_id=event.decision_id,
                            details={"attendance_id": event.id, "kiosk": kiosk, "kind": kind, **details},
                        )
                    if kind == "checkin" and status == "present" and exam.online:
                        self._schedule_random(session, exam, student_id, now)
                    result = CheckinResult(
                        session=exam.code, student_id=student_id, kind=kind, status=status,
                        admitted=status == "present", message=message, score=event.score, threshold=event.threshold,
                        decision_id=event.decision_id, attendance_id=event.id, alerts=[a[0] for a in alerts],
                        suspects=suspects, locked=newly_locked,
                    )
                break
            except IntegrityError:
                if attempt:
                    raise

        if locked:
            raise LockedOutError(f"{student_id!r} is locked after repeated failed verifications; an administrator must clear it")
        return result

    # -- online re-verification -------------------------------------------------------------
    @staticmethod
    def _due_challenge(session, exam_id: int, student_id: str, now: dt.datetime) -> ReverifyChallenge | None:
        pending = session.scalars(
            select(ReverifyChallenge)
            .where(ReverifyChallenge.session_id == exam_id, ReverifyChallenge.student_id == student_id,
                   ReverifyChallenge.status == "pending")
            .order_by(ReverifyChallenge.due_at)
        )
        return next((c for c in pending if as_utc(c.due_at) <= now <= as_utc(c.deadline)), None)

    def _schedule_random(self, session, exam: ExamSession, student_id: str, now: dt.datetime) -> None:
        """Random moments between one minute from now and the end, unknown to the student."""
        opts = _session_out(exam)
        start = max(now, opts.starts_at) + dt.timedelta(minutes=1)
        span = (opts.ends_at - start).total_seconds() - opts.reverify_window_s
        if opts.reverify_random == 0 or span <= 0:
            return
        for _ in range(opts.reverify_random):
            due = start + dt.timedelta(seconds=secrets.randbelow(int(span)) + 1)
            session.add(ReverifyChallenge(
                session_id=exam.id, student_id=student_id, due_at=due,
                deadline=due + dt.timedelta(seconds=opts.reverify_window_s), status="pending",
            ))

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
            principal.require("admin", g)
            exam = self._exam(session, g, code)
            if not exam.online:
                raise InvalidRequestError(f"exam session {code!r} is not online: it has no re-verifications")
            window = window_s or _session_out(exam).reverify_window_s
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
            return [_challenge_out(c) for c in rows]

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
            return [_challenge_out(c) for c in rows if as_utc(c.due_at) <= now <= as_utc(c.deadline)]

    def sweep_missed(self, now: dt.datetime | None = None) -> int:
        """Mark challenges past their deadline as missed: an attendance event and an alert each."""
        now = now or utcnow()
        missed = 0
        with self.gs.ctx.sessions.begin() as session:
            for c in session.scalars(select(ReverifyChallenge).where(ReverifyChallenge.status == "pending",
                                                                     ReverifyChallenge.deadline < now)):
                exam = session.get(ExamSession, c.session_id)
                g = session.get(Gallery, exam.gallery_id)
                event = AttendanceEvent(session_id=exam.id, student_id=c.student_id, kind="reverify", status="missed",
                                        kiosk="remote", details={"challenge_id": c.id}, created_at=now)
                session.add(event)
                session.flush()
                c.status, c.attendance_id = "missed", event.id
                self.alerts.raise_alert(
                    session, g, "reverify_missed", f"[{exam.code}] {c.student_id} did not re-verify by "
                    f"{as_utc(c.deadline).isoformat(timespec='seconds')}", severity="critical", subject=c.student_id,
                    session_id=exam.id, details={"challenge_id": c.id, "attendance_id": event.id},
                )
                missed += 1
        return missed

    # -- attendance ---------------------------------------------------------------------------
    def attendance_rows(self, gallery: str, code: str, *, principal: Principal) -> list[dict]:
        """One row per expected student (and any other who tried): final status and counts."""
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            exam = self._exam(session, g, code)
            opts = _session_out(exam)
            names = dict(session.execute(select(Subject.external_id, Subject.display_name).where(Subject.gallery_id == g.id)).all())
            expected = opts.students if opts.students is not None else sorted(names)
            events = list(session.scalars(select(AttendanceEvent).where(AttendanceEvent.session_id == exam.id).order_by(AttendanceEvent.id)))
            alert_counts: dict[str, int] = {}
            for sid in session.scalars(select(Alert.subject_external_id).where(Alert.session_id == exam.id)):
                alert_counts[sid] = alert_counts.get(sid, 0) + 1
        by_student: dict[str, list[AttendanceEvent]] = {}
        for e in events:
            by_student.setdefault(e.student_id, []).append(e)
        rows = []
        for sid in list(expected) + sorted(set(by_student) - set(expected)):
            evs = by_student.get(sid, [])
            checkins = [e for e in evs if e.kind == "checkin"]
            present = next((e for e in checkins if e.status == "present"), None)
            last = checkins[-1] if checkins else None
            final = present or last
            rev = [e for e in evs if e.kind == "reverify"]
            rows.append({
                "student_id": sid,
                "name": names.get(sid, ""),
                "status": "present" if present else (last.status if last else "absent"),
                "checked_in_at": as_utc(final.created_at).isoformat(timespec="seconds") if final else "",
                "kiosk": final.kiosk if final else "",
                "score": f"{final.score:.4f}" if final and final.score is not None else "",
                "threshold": f"{final.threshold:.4f}" if final and final.threshold is not None else "",
                "attempts": len(checkins),
                "reverify_passed": sum(e.status == "present" for e in rev),
                "reverify_failed": sum(e.status not in ("present", "missed") for e in rev),
                "reverify_missed": sum(e.status == "missed" for e in rev),
                "alerts": alert_counts.get(sid, 0),
            })
        return rows

    def attendance_csv(self, gallery: str, code: str, *, principal: Principal) -> str:
        rows = self.attendance_rows(gallery, code, principal=principal)
        buffer = io.StringIO()
        fields = ["student_id", "name", "status", "checked_in_at", "kiosk", "score", "threshold", "attempts",
                  "reverify_passed", "reverify_failed", "reverify_missed", "alerts"]
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()


def read_roster_file(path: Path, max_bytes: int) -> list[RosterRow]:
    """The CLI's way in: a CSV on disk, photo cells relative to its folder."""
    return parse_roster(path.read_text(encoding="utf-8"), folder_resolver(path.parent, max_bytes))

