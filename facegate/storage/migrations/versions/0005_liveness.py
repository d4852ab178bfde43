"""Liveness challenges: the random actions the server asks for, single use, with an expiry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "liveness_challenges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("gallery_id", sa.Integer, sa.ForeignKey("galleries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("nonce_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("actions", sa.JSON, nullable=False),
        sa.Column("subject_external_id", sa.String(200), nullable=True),
        sa.Column("max_seconds", sa.Float, nullable=False),
        sa.Column("issued_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("used_at", TZ, nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
    )
    op.create_index("ix_liveness_challenges_gallery_id", "liveness_challenges", ["gallery_id"])


def downgrade() -> None:
    op.drop_index("ix_liveness_challenges_gallery_id", table_name="liveness_challenges")
    op.drop_table("liveness_challenges")
