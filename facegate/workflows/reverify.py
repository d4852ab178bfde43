"""Re-verification challenges of online exams: scheduled at random, answered by the student,
or swept as missed once their deadline passes.

Every server process runs the sweep, and a student's answer may arrive while it runs; so a
challenge changes state only through :func:`settle`, a conditional UPDATE ... WHERE status =
'pending' whose row count says whether this caller settled it, in the same transaction as the
attendance event and alert that go with it. Exactly one of them records the outcome.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from facegate.gallery.service import GalleryService
from facegate.storage.models import AttendanceEvent, ExamSession, Gallery, ReverifyChallenge, as_utc, utcnow
from facegate.workflows.alerts import AlertCenter
from facegate.workflows.exam_schemas import session_out


def settle(session: Session, challenge_id: int, status: str, attendance_id: int | None = None) -> bool:
    """Move a pending challenge to ``status`` (passed, failed, missed); False when it was no
    longer pending (settled meanwhile by another process or request)."""
    values: dict[str, Any] = {"status": status}
    if attendance_id is not None:
        values["attendance_id"] = attendance_id
    result = session.execute(
        update(ReverifyChallenge)
        .where(ReverifyChallenge.id == challenge_id, ReverifyChallenge.status == "pending")
        .values(**values).execution_options(synchronize_session=False)
    )
    # An UPDATE answers a CursorResult (it has the rowcount); Session.execute is typed to
    # return the plain Result whatever the statement.
    return cast("CursorResult[Any]", result).rowcount == 1


def due_challenge(session: Session, exam_id: int, student_id: str, now: dt.datetime) -> ReverifyChallenge | None:
    """The student's oldest pending challenge whose window is open now."""
    pending = session.scalars(
        select(ReverifyChallenge)
        .where(ReverifyChallenge.session_id == exam_id, ReverifyChallenge.student_id == student_id,
               ReverifyChallenge.status == "pending")
        .order_by(ReverifyChallenge.due_at)
    )
    return next((c for c in pending if as_utc(c.due_at) <= now <= as_utc(c.deadline)), None)


def schedule_random(session: Session, exam: ExamSession, student_id: str, now: dt.datetime) -> None:
    """Random moments between one minute from now and the end, unknown to the student."""
    opts = session_out(exam)
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


def sweep_missed(gs: GalleryService, alerts: AlertCenter, now: dt.datetime | None = None) -> int:
    """Mark challenges past their deadline as missed: an attendance event and an alert each.
    Returns how many this call recorded (another process may record some of them)."""
    now = now or utcnow()
    with gs.ctx.sessions() as session:
        overdue = list(session.scalars(
            select(ReverifyChallenge.id)
            .where(ReverifyChallenge.status == "pending", ReverifyChallenge.deadline < now)
            .order_by(ReverifyChallenge.id)
        ))
    return sum(_record_missed(gs, alerts, challenge_id, now) for challenge_id in overdue)


def _record_missed(gs: GalleryService, alerts: AlertCenter, challenge_id: int, now: dt.datetime) -> bool:
    """One challenge claimed as missed, with its event and alert, in one transaction."""
    with gs.ctx.sessions.begin() as session:
        if not settle(session, challenge_id, "missed"):
            return False
        c = session.get(ReverifyChallenge, challenge_id)
        exam = session.get(ExamSession, c.session_id) if c is not None else None
        g = session.get(Gallery, exam.gallery_id) if exam is not None else None
        if c is None or exam is None or g is None:  # deleted meanwhile: nothing left to record
            return False
        event = AttendanceEvent(session_id=exam.id, student_id=c.student_id, kind="reverify", status="missed",
                                kiosk="remote", details={"challenge_id": c.id}, created_at=now)
        session.add(event)
        session.flush()
        c.attendance_id = event.id
        alerts.raise_alert(
            session, g, "reverify_missed", f"[{exam.code}] {c.student_id} did not re-verify by "
            f"{as_utc(c.deadline).isoformat(timespec='seconds')}", severity="critical", subject=c.student_id,
            session_id=exam.id, details={"challenge_id": c.id, "attendance_id": event.id},
        )
        return True
