"""Erasure of a subject: nothing of the person is left in the database, the audit trail stays.

Deleting a subject removes its templates, face crops and account (cascade), and then what
other tables still hold of the person: the probe templates of decisions about them, their id
in decisions, alerts, attendance, re-verification challenges (replaced by a pseudonym, so the
trail shows *that* something happened, not to whom), and their failed attempts and lockouts.

Then the bytes: on SQLite ``secure_delete`` (set on every connection, see storage.db) zeroes
freed pages, and the WAL, which still holds the rows as they were before the delete, is
checkpointed into the main file and truncated. On PostgreSQL the deleted row versions stay in
the table's pages until VACUUM removes them; a plain VACUUM of the touched tables is run after
the erasure. What VACUUM does not cover: it makes the space reusable but does not overwrite it
on disk, and the WAL segments and any base backups keep the old rows until they are recycled;
VACUUM FULL rewrites the table into new files (the old ones are unlinked, not wiped).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sqlalchemy import String, cast, delete, or_, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from facegate.storage.models import (
    Alert,
    AttendanceEvent,
    Decision,
    ExamSession,
    FailedAttempt,
    Lockout,
    ReverifyChallenge,
)

ACCOUNT_PREFIX = "user:"  # the subject id of a self-service account (workflows.accounts)
_TOUCHED = ("decisions", "alerts", "attendance", "reverify_challenges", "failed_attempts", "lockouts",
            "face_templates", "face_crops", "subjects", "accounts")


def pseudonym(gallery_id: int, external_id: str) -> str:
    """A stable stand-in for an erased id: the same person's rows still group together in the
    audit trail, but the id cannot be read back (a hash, salted with the gallery)."""
    digest = hashlib.sha256(f"facegate-erased:{gallery_id}:{external_id}".encode()).hexdigest()[:16]
    return f"erased:{digest}"


def _scrub(value: Any, names: tuple[str, ...], alias: str) -> Any:
    """``value`` (JSON) with every mention of the person replaced: whole ids only, so erasing
    ``S1`` leaves ``S10`` alone."""
    if isinstance(value, str):
        for name in names:
            value = re.sub(rf"(?<![\w.@-]){re.escape(name)}(?![\w.@-])", alias, value)
        return value
    if isinstance(value, list):
        return [_scrub(v, names, alias) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, names, alias) for k, v in value.items()}
    return value


def _mentions(column: Any, names: tuple[str, ...]) -> Any:
    return or_(*[cast(column, String).contains(json.dumps(n)[1:-1]) for n in names])


def erase_traces(session: Session, gallery_id: int, external_id: str) -> dict[str, int]:
    """Pseudonymise or delete every row outside the subject's own tables that names the subject;
    returns how many rows of each table were changed. Runs in the caller's transaction."""
    names: tuple[str, ...] = (external_id,)
    if external_id.startswith(ACCOUNT_PREFIX):
        names += (external_id[len(ACCOUNT_PREFIX):],)  # an account checks in under its username
    alias = pseudonym(gallery_id, external_id)
    counts: dict[str, int] = {}

    decisions = session.scalars(select(Decision).where(
        Decision.gallery_id == gallery_id,
        or_(Decision.subject_external_id.in_(names), _mentions(Decision.details, names)),
    )).all()
    for d in decisions:
        d.subject_external_id = alias if d.subject_external_id in names else d.subject_external_id
        d.details = _scrub(d.details, names, alias)
        d.probe = None  # the probe template of a decision about the person is their biometric
    counts["decisions"] = len(decisions)

    alerts = session.scalars(select(Alert).where(
        Alert.gallery_id == gallery_id,
        or_(Alert.subject_external_id.in_(names), _mentions(Alert.details, names), _mentions(Alert.message, names)),
    )).all()
    for a in alerts:
        a.subject_external_id = alias if a.subject_external_id in names else a.subject_external_id
        a.message = _scrub(a.message, names, alias)
        a.details = _scrub(a.details, names, alias)
    counts["alerts"] = len(alerts)

    exams = select(ExamSession.id).where(ExamSession.gallery_id == gallery_id)
    events = session.scalars(select(AttendanceEvent).where(
        AttendanceEvent.session_id.in_(exams),
        or_(AttendanceEvent.student_id.in_(names), _mentions(AttendanceEvent.details, names)),
    )).all()
    for e in events:
        e.student_id = alias if e.student_id in names else e.student_id
        e.details = _scrub(e.details, names, alias)
    counts["attendance"] = len(events)

    challenges = session.scalars(select(ReverifyChallenge).where(
        ReverifyChallenge.session_id.in_(exams), ReverifyChallenge.student_id.in_(names)
    )).all()
    for c in challenges:
        c.student_id = alias
    counts["reverify_challenges"] = len(challenges)

    for model, key in ((FailedAttempt, "failed_attempts"), (Lockout, "lockouts")):
        # "user:ada from key 7": an account's lock as tried from one source (workflows.accounts).
        per_source = [model.identity.startswith(n + " from ", autoescape=True) for n in names]
        result = session.execute(delete(model).where(
            model.gallery_id == gallery_id, or_(model.identity.in_(names), *per_source)
        ))
        counts[key] = int(getattr(result, "rowcount", 0) or 0)
    return counts


def erase_exam_rosters(session: Session, gallery_id: int, external_id: str) -> None:
    """Take the person off the expected-students lists of the gallery's exam sessions."""
    for exam in session.scalars(select(ExamSession).where(ExamSession.gallery_id == gallery_id)):
        settings = dict(exam.settings or {})
        students = settings.get("students")
        if isinstance(students, list) and external_id in students:
            settings["students"] = [pseudonym(gallery_id, s) if s == external_id else s for s in students]
            exam.settings = settings


def flush_freed_bytes(engine: Engine) -> None:
    """After an erasure: on SQLite, move the WAL into the main file (where secure_delete has
    zeroed the freed pages) and truncate it; on PostgreSQL, VACUUM the touched tables."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in _TOUCHED:
                conn.execute(text(f"VACUUM {table}"))
