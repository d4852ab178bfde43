"""The shapes of exam sessions and checks as the API and CLI see them, and their reading
from the stored rows (times made aware UTC, the session's extra settings unpacked)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from facegate.gallery.liveness_schemas import LivenessResult
from facegate.gallery.schemas import Candidate
from facegate.storage.models import ExamSession, ReverifyChallenge, as_utc


class ExamSessionIn(BaseModel):
    code: str = Field(..., min_length=1, max_length=100, pattern=r"^[^/\x00-\x1f\x7f]+$",
                      description="No slash and no control character: it names URLs and file names.")
    course: str = Field(..., min_length=1, max_length=200)
    room: str = Field("", max_length=200)
    starts_at: dt.datetime
    ends_at: dt.datetime
    online: bool = False
    students: list[str] | None = Field(None, description="Expected students; default: every subject of the gallery.")
    checkin_opens_minutes: float = Field(30.0, ge=0, le=7 * 1440, description="Check-in opens this long before the start (at most a week).")
    reverify_random: int = Field(0, ge=0, le=20, description="Online: random re-verifications per student.")
    reverify_window_s: float = Field(120.0, gt=0, le=86400, description="Online: time a student has to answer one.")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if not 2000 <= value.astimezone(dt.UTC).year <= 2200:
            raise ValueError("must be a time between the years 2000 and 2200")
        return value

    @model_validator(mode="after")
    def _order(self) -> ExamSessionIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class ExamSessionOut(ExamSessionIn):
    id: int
    created_at: dt.datetime


CheckinStatus = Literal["present", "duplicate", "flagged", "rejected", "unknown_id", "locked", "liveness_failed"]
CheckKind = Literal["checkin", "reverify"]


class CheckinResult(BaseModel):
    """What the kiosk shows: admitted or not, and why."""

    session: str
    student_id: str
    kind: CheckKind
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
    liveness: LivenessResult | None = Field(None, description="The liveness check (when the gallery's liveness is on).")


class ChallengeOut(BaseModel):
    id: int
    student_id: str
    due_at: dt.datetime
    deadline: dt.datetime
    status: str


def session_out(row: ExamSession) -> ExamSessionOut:
    extra = row.settings or {}
    return ExamSessionOut(
        id=row.id, code=row.code, course=row.course, room=row.room, starts_at=as_utc(row.starts_at),
        ends_at=as_utc(row.ends_at), online=row.online, created_at=row.created_at, **extra,
    )


def challenge_out(c: ReverifyChallenge) -> ChallengeOut:
    return ChallengeOut(id=c.id, student_id=c.student_id, due_at=as_utc(c.due_at), deadline=as_utc(c.deadline),
                        status=c.status)
