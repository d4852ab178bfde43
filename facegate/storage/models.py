"""The database schema (SQLAlchemy 2.0 typed models). Alembic migrations mirror it.

Templates are stored as raw float32 bytes on SQLite and as pgvector ``vector`` on
PostgreSQL (see :class:`VectorType`), so the same models serve both backends.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, overload

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, UserDefinedType

from facegate.storage.sealing import SealError, is_sealed, sealer_of


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time as an aware UTC datetime: SQLite hands them back naive (written in UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


class UtcDateTime(TypeDecorator):
    """A time stored in UTC and read back aware on every backend: SQLite keeps no zone, so
    without this its times come back naive, which is not the ``date-time`` the API promises."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        return as_utc(value)


class _PgVector(UserDefinedType):
    """pgvector's ``vector`` without a fixed dimension (galleries of different models share
    the table; HNSW indexes are per model on ``vector::vector(dim)``)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "vector"

    def bind_processor(self, dialect):
        def process(value):
            if value is None:
                return None
            return "[" + ",".join(f"{float(x):.7g}" for x in np.asarray(value).ravel()) + "]"

        return process

    def result_processor(self, dialect, coltype):
        def process(value):
            if value is None:
                return None
            if isinstance(value, str):
                return np.array(value.strip("[]").split(","), dtype=np.float32)
            return np.asarray(value, dtype=np.float32)

        return process


class VectorType(TypeDecorator):
    """A float32 vector: pgvector on PostgreSQL, little-endian bytes elsewhere."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_PgVector())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        array = np.asarray(value, dtype="<f4").ravel()
        if dialect.name == "postgresql":
            return array
        sealer = sealer_of(dialect)
        return sealer.seal(array.tobytes(), b"vector") if sealer else array.tobytes()

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "postgresql":
            return np.asarray(value, dtype=np.float32)
        return np.frombuffer(_opened(value, dialect, b"vector"), dtype="<f4").copy()


def _opened(value: bytes, dialect, column: bytes) -> bytes:
    if not is_sealed(value):
        return value
    sealer = sealer_of(dialect)
    if sealer is None:
        raise SealError("this database holds sealed biometric data: set FACEGATE_ENCRYPT_TEMPLATES=true and "
                        "give its FACEGATE_TEMPLATE_KEY (or the data folder's template_key file)")
    return sealer.open(value, column)


class SealedBytes(TypeDecorator):
    """Bytes sealed at rest on every backend (face crops): see facegate.storage.sealing."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        sealer = sealer_of(dialect)
        return sealer.seal(bytes(value), b"crop") if sealer else bytes(value)

    def process_result_value(self, value, dialect):
        return None if value is None else _opened(bytes(value), dialect, b"crop")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Gallery(Base):
    """An organisation's set of people, bound to one recognition model."""

    __tablename__ = "galleries"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model_id: Mapped[str] = mapped_column(String(50))
    model_sha256: Mapped[str] = mapped_column(String(64))
    detector: Mapped[str] = mapped_column(String(50), default="scrfd")
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Kept by database triggers (migration 0006) in the statement that writes a template: never
    # set them from Python. A cache stamped with ``template_version`` is current while it holds.
    template_version: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    template_count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))

    subjects: Mapped[list["Subject"]] = relationship(back_populates="gallery", cascade="all, delete-orphan")


class ApiKey(Base):
    """A hashed API key; the secret is shown once, at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), default="")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    gallery_id: Mapped[int | None] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Subject(Base):
    """A person in a gallery, known by the organisation's own id (a student number)."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("gallery_id", "external_id", name="uq_subject_external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(300), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    gallery: Mapped[Gallery] = relationship(back_populates="subjects")
    templates: Mapped[list["FaceTemplate"]] = relationship(back_populates="subject", cascade="all, delete-orphan")


class FaceTemplate(Base):
    __tablename__ = "face_templates"
    __table_args__ = (
        UniqueConstraint("subject_id", "source_sha256", name="uq_template_subject_source"),
        Index("ix_face_templates_gallery_model", "gallery_id", "model_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(String(50))
    model_sha256: Mapped[str] = mapped_column(String(64))
    vector: Mapped[np.ndarray] = mapped_column(VectorType())
    quality: Mapped[float] = mapped_column(Float, default=0.0)
    source_sha256: Mapped[str] = mapped_column(String(64))
    box: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    subject: Mapped[Subject] = relationship(back_populates="templates")
    crop: Mapped["FaceCrop | None"] = relationship(back_populates="template", cascade="all, delete-orphan", uselist=False)


class FaceCrop(Base):
    """The aligned face crop (JPEG), kept only when the gallery's ``store_crops`` is on."""

    __tablename__ = "face_crops"

    template_id: Mapped[int] = mapped_column(ForeignKey("face_templates.id", ondelete="CASCADE"), primary_key=True)
    jpeg: Mapped[bytes] = mapped_column(SealedBytes())

    template: Mapped[FaceTemplate] = relationship(back_populates="crop")


class Decision(Base):
    """Every verify / identify / enroll outcome, with the threshold and calibration it used."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_gallery_time", "gallery_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(30))
    subject_external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    target_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    calibration: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # What monitoring needs of the probe: its template (for recalibration and template refresh)
    # and the conditions it was taken in (for drift).
    probe: Mapped[np.ndarray | None] = mapped_column(VectorType(), nullable=True)
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)
    brightness: Mapped[float | None] = mapped_column(Float, nullable=True)
    face_size: Mapped[float | None] = mapped_column(Float, nullable=True)


# -- workflows -------------------------------------------------------------------------------
class ExamSession(Base):
    """One sitting of an exam: in a room with a kiosk, or online with re-verification."""

    __tablename__ = "exam_sessions"
    __table_args__ = (UniqueConstraint("gallery_id", "code", name="uq_exam_session_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(100))
    course: Mapped[str] = mapped_column(String(200))
    room: Mapped[str] = mapped_column(String(200), default="")
    starts_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class AttendanceEvent(Base):
    """One check of one student in one session: the initial check-in or a re-verification."""

    __tablename__ = "attendance"
    __table_args__ = (
        Index("ix_attendance_session_student", "session_id", "student_id"),
        # At most one admitted check-in per student and session, whatever process records it.
        Index(
            "uq_attendance_admitted", "session_id", "student_id", unique=True,
            sqlite_where=text("kind = 'checkin' AND status = 'present'"),
            postgresql_where=text("kind = 'checkin' AND status = 'present'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("exam_sessions.id", ondelete="CASCADE"))
    student_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # checkin | reverify
    status: Mapped[str] = mapped_column(String(30))  # present | rejected | locked | unknown_id | ...
    kiosk: Mapped[str] = mapped_column(String(200), default="")
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    decision_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ReverifyChallenge(Base):
    """An online exam's request that a student verify again before a deadline."""

    __tablename__ = "reverify_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("exam_sessions.id", ondelete="CASCADE"), index=True)
    student_id: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    deadline: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | passed | failed | missed
    attendance_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Alert(Base):
    """Something a person must look at; delivered to the gallery's webhook, acknowledged by staff."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_gallery_time", "gallery_id", "created_at"),
        Index("ix_alerts_delivery", "delivery_status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10), default="warning")
    subject_external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    session_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    decision_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # pending | delivered | failed (gave up) | none (no webhook configured)
    delivery_status: Mapped[str] = mapped_column(String(20), default="none")
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


class FailedAttempt(Base):
    """A failed verification of one identity, counted toward its lockout."""

    __tablename__ = "failed_attempts"
    __table_args__ = (Index("ix_failed_attempts_identity", "gallery_id", "identity", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"))
    identity: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Lockout(Base):
    """An identity refused until an admin clears it."""

    __tablename__ = "lockouts"
    __table_args__ = (Index("ix_lockouts_identity", "gallery_id", "identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"))
    identity: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    locked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    cleared_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Account(Base):
    """A self-service login: username, password hash (argon2) and the consent given."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("gallery_id", "username", name="uq_account_username"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id", ondelete="CASCADE"), unique=True)
    username: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    consent_text: Mapped[str] = mapped_column(Text)
    consent_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class OpsAction(Base):
    """An automatic or manual model-operations action (recalibration, template refresh),
    recorded with what is needed to undo it."""

    __tablename__ = "ops_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int | None] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"), nullable=True)
    kind: Mapped[str] = mapped_column(String(40))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    reverted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Operator(Base):
    """A person who signs in to the admin pages (admin, proctor, team lead); machines use API keys."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    gallery_id: Mapped[int | None] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"), nullable=True)
    display_name: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class OperatorSession(Base):
    """A signed-in browser: only the token's SHA-256 is kept, with the CSRF token sent beside it."""

    __tablename__ = "operator_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LivenessChallenge(Base):
    """A liveness challenge the server issued: the actions asked, in order, and when; only the
    nonce's SHA-256 is kept. ``used_at`` is set once, by the first answer (single use)."""

    __tablename__ = "liveness_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    gallery_id: Mapped[int] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"), index=True)
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    actions: Mapped[list[str]] = mapped_column(JSON)
    subject_external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    max_seconds: Mapped[float] = mapped_column(Float)
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20), default="")


class TemplateChange(Base):
    """One template added to or removed from a gallery, at the gallery version that did it
    (written by the triggers of migration 0006): what an index behind that version must apply."""

    __tablename__ = "template_changes"
    __table_args__ = (Index("ix_template_changes_gallery_version", "gallery_id", "version"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    gallery_id: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(BigInteger)
    template_id: Mapped[int] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(10))  # add | remove
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), server_default=text("CURRENT_TIMESTAMP"))


class JobLease(Base):
    """A periodic job that one worker at a time may run: held by ``holder`` until ``expires_at``."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
