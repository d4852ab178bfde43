"""Workflows (exam sessions, attendance, re-verification, alerts, lockouts, accounts), the
model-operations action log, and the probe columns of the decision log.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facegate.storage.models import VectorType

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _gallery_fk(nullable: bool = False) -> sa.Column:
    return sa.Column("gallery_id", sa.Integer, sa.ForeignKey("galleries.id", ondelete="CASCADE"), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("probe", VectorType(), nullable=True))
        batch.add_column(sa.Column("quality", sa.Float, nullable=True))
        batch.add_column(sa.Column("brightness", sa.Float, nullable=True))
        batch.add_column(sa.Column("face_size", sa.Float, nullable=True))
    op.create_table(
        "exam_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        _gallery_fk(),
        sa.Column("code", sa.String(100), nullable=False),
        sa.Column("course", sa.String(200), nullable=False),
        sa.Column("room", sa.String(200), nullable=False),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=False),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("gallery_id", "code", name="uq_exam_session_code"),
    )
    op.create_index("ix_exam_sessions_gallery_id", "exam_sessions", ["gallery_id"])
    op.create_table(
        "attendance",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("exam_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("student_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("kiosk", sa.String(200), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("decision_id", sa.Integer, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_attendance_session_student", "attendance", ["session_id", "student_id"])
    admitted = sa.text("kind = 'checkin' AND status = 'present'")
    op.create_index("uq_attendance_admitted", "attendance", ["session_id", "student_id"], unique=True,
                    sqlite_where=admitted, postgresql_where=admitted)
    op.create_table(
        "reverify_challenges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("exam_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("student_id", sa.String(200), nullable=False),
        sa.Column("due_at", TZ, nullable=False),
        sa.Column("deadline", TZ, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attendance_id", sa.Integer, nullable=True),
    )
    op.create_index("ix_reverify_challenges_session_id", "reverify_challenges", ["session_id"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        _gallery_fk(),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("subject_external_id", sa.String(200), nullable=True),
        sa.Column("session_id", sa.Integer, nullable=True),
        sa.Column("decision_id", sa.Integer, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("acknowledged_at", TZ, nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.Column("delivery_status", sa.String(20), nullable=False),
        sa.Column("delivery_attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=True),
        sa.Column("delivered_at", TZ, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
    )
    op.create_index("ix_alerts_gallery_time", "alerts", ["gallery_id", "created_at"])
    op.create_index("ix_alerts_delivery", "alerts", ["delivery_status", "next_attempt_at"])
    op.create_table(
        "failed_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        _gallery_fk(),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_failed_attempts_identity", "failed_attempts", ["gallery_id", "identity", "created_at"])
    op.create_table(
        "lockouts",
        sa.Column("id", sa.Integer, primary_key=True),
        _gallery_fk(),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("locked_at", TZ, nullable=False),
        sa.Column("cleared_at", TZ, nullable=True),
        sa.Column("cleared_by", sa.String(200), nullable=True),
    )
    op.create_index("ix_lockouts_identity", "lockouts", ["gallery_id", "identity"])
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        _gallery_fk(),
        sa.Column("subject_id", sa.Integer, sa.ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("username", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("consent_text", sa.Text, nullable=False),
        sa.Column("consent_at", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("last_login_at", TZ, nullable=True),
        sa.UniqueConstraint("gallery_id", "username", name="uq_account_username"),
    )
    op.create_table(
        "ops_actions",
        sa.Column("id", sa.Integer, primary_key=True),
        _gallery_fk(nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("reverted_at", TZ, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("ops_actions")
    op.drop_table("accounts")
    op.drop_index("ix_lockouts_identity", table_name="lockouts")
    op.drop_table("lockouts")
    op.drop_index("ix_failed_attempts_identity", table_name="failed_attempts")
    op.drop_table("failed_attempts")
    op.drop_index("ix_alerts_delivery", table_name="alerts")
    op.drop_index("ix_alerts_gallery_time", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_reverify_challenges_session_id", table_name="reverify_challenges")
    op.drop_table("reverify_challenges")
    op.drop_index("uq_attendance_admitted", table_name="attendance")
    op.drop_index("ix_attendance_session_student", table_name="attendance")
    op.drop_table("attendance")
    op.drop_index("ix_exam_sessions_gallery_id", table_name="exam_sessions")
    op.drop_table("exam_sessions")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("face_size")
        batch.drop_column("brightness")
        batch.drop_column("quality")
        batch.drop_column("probe")
