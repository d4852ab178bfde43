"""Initial schema: galleries, API keys, subjects, face templates, crops, decision log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from facegate.storage.models import VectorType

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# One HNSW index per model dimension on PostgreSQL (pgvector needs a fixed dimension).
PG_VECTOR_INDEXES = {"arcface": 512, "dlib": 128}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "galleries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("model_id", sa.String(50), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("detector", sa.String(50), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scopes", sa.JSON, nullable=False),
        sa.Column("gallery_id", sa.Integer, sa.ForeignKey("galleries.id", ondelete="CASCADE"), nullable=True),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("revoked_at", tz, nullable=True),
    )
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("gallery_id", sa.Integer, sa.ForeignKey("galleries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(300), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.Column("updated_at", tz, nullable=False),
        sa.UniqueConstraint("gallery_id", "external_id", name="uq_subject_external_id"),
    )
    op.create_index("ix_subjects_gallery_id", "subjects", ["gallery_id"])
    op.create_table(
        "face_templates",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("gallery_id", sa.Integer, sa.ForeignKey("galleries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject_id", sa.Integer, sa.ForeignKey("subjects.id", ondelete="CASCADE"), nullable=False),
        sa.Column("model_id", sa.String(50), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("vector", VectorType(), nullable=False),
        sa.Column("quality", sa.Float, nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False),
        sa.Column("box", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
        sa.UniqueConstraint("subject_id", "source_sha256", name="uq_template_subject_source"),
    )
    op.create_index("ix_face_templates_subject_id", "face_templates", ["subject_id"])
    op.create_index("ix_face_templates_gallery_model", "face_templates", ["gallery_id", "model_id"])
    if bind.dialect.name == "postgresql":
        for model, dim in PG_VECTOR_INDEXES.items():
            op.execute(
                f"CREATE INDEX ix_face_templates_hnsw_{model} ON face_templates "
                f"USING hnsw ((vector::vector({dim})) vector_cosine_ops) WHERE model_id = '{model}'"
            )
    op.create_table(
        "face_crops",
        sa.Column("template_id", sa.Integer, sa.ForeignKey("face_templates.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("jpeg", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("gallery_id", sa.Integer, sa.ForeignKey("galleries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(30), nullable=False),
        sa.Column("subject_external_id", sa.String(200), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("target_rate", sa.Float, nullable=True),
        sa.Column("calibration", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", tz, nullable=False),
    )
    op.create_index("ix_decisions_gallery_time", "decisions", ["gallery_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_decisions_gallery_time", table_name="decisions")
    op.drop_table("decisions")
    op.drop_table("face_crops")
    if op.get_bind().dialect.name == "postgresql":
        for model in PG_VECTOR_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS ix_face_templates_hnsw_{model}")
    op.drop_index("ix_face_templates_gallery_model", table_name="face_templates")
    op.drop_index("ix_face_templates_subject_id", table_name="face_templates")
    op.drop_table("face_templates")
    op.drop_index("ix_subjects_gallery_id", table_name="subjects")
    op.drop_table("subjects")
    op.drop_table("api_keys")
    op.drop_table("galleries")
