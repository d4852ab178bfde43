"""Attendance of one exam session: a row per expected student (and any other who tried) with
the final check-in status, the re-verification counts and the alerts raised, and its CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate.storage.models import Alert, AttendanceEvent, Subject, as_utc
from facegate.workflows.accounts import USER_PREFIX

ATTENDANCE_FIELDS = [
    "student_id", "name", "status", "checked_in_at", "kiosk", "score", "threshold", "attempts",
    "reverify_passed", "reverify_failed", "reverify_missed", "alerts",
]


def attendance_rows(
    session: Session, gallery_id: int, exam_id: int, students: list[str] | None
) -> list[dict[str, Any]]:
    """The rows of an exam the caller has found and may read; ``students`` is the exam's
    expected list (None: every subject of the gallery)."""
    names: dict[str, str] = {}
    for external_id, display_name in session.execute(
        select(Subject.external_id, Subject.display_name).where(Subject.gallery_id == gallery_id)
    ):
        # A self-enrolled account (``user:<id>``) checks in under its username (see
        # roster.student_subject), unless a subject of that very id exists.
        sid = external_id[len(USER_PREFIX):] if external_id.startswith(USER_PREFIX) else external_id
        if sid == external_id or sid not in names:
            names[sid] = display_name
    expected = students if students is not None else sorted(names)
    events = list(session.scalars(
        select(AttendanceEvent).where(AttendanceEvent.session_id == exam_id).order_by(AttendanceEvent.id)
    ))
    alert_counts: dict[str, int] = {}
    for about in session.scalars(select(Alert.subject_external_id).where(Alert.session_id == exam_id)):
        if about is not None:  # an alert about no student counts toward no row
            alert_counts[about] = alert_counts.get(about, 0) + 1
    by_student: dict[str, list[AttendanceEvent]] = {}
    for e in events:
        by_student.setdefault(e.student_id, []).append(e)
    return [
        student_row(sid, names.get(sid, ""), by_student.get(sid, []), alert_counts.get(sid, 0))
        for sid in list(expected) + sorted(set(by_student) - set(expected))
    ]


def student_row(student_id: str, name: str, events: Sequence[AttendanceEvent], alerts: int) -> dict[str, Any]:
    """One student's row: present if any check-in admitted them, else the last check-in's
    status (or absent); time, kiosk and score of that check-in."""
    checkins = [e for e in events if e.kind == "checkin"]
    present = next((e for e in checkins if e.status == "present"), None)
    last = checkins[-1] if checkins else None
    final = present or last
    rev = [e for e in events if e.kind == "reverify"]
    return {
        "student_id": student_id,
        "name": name,
        "status": "present" if present else (last.status if last else "absent"),
        "checked_in_at": as_utc(final.created_at).isoformat(timespec="seconds") if final else "",
        "kiosk": final.kiosk if final else "",
        "score": f"{final.score:.4f}" if final and final.score is not None else "",
        "threshold": f"{final.threshold:.4f}" if final and final.threshold is not None else "",
        "attempts": len(checkins),
        "reverify_passed": sum(e.status == "present" for e in rev),
        "reverify_failed": sum(e.status not in ("present", "missed") for e in rev),
        "reverify_missed": sum(e.status == "missed" for e in rev),
        "alerts": alerts,
    }


# A cell a spreadsheet would read as a formula (CSV injection, OWASP): = + - @, tab, CR.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe, so it
    shows as the text it is (``=HYPERLINK(...)`` in a roster name stays text). Numbers are
    left alone: a negative score is a number, not a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def attendance_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ATTENDANCE_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()
