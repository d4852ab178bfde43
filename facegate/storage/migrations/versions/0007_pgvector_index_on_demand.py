"""PostgreSQL: drop pgvector's HNSW indexes; a service on search_index="pgvector" builds them.

Since the in-process index became the default (0006), nothing read these graphs, and every
template write maintained them: on PostgreSQL that was most of an enrollment's or an import's
cost (facegate/storage/pgvector_indexes.py). SQLite has no such index: nothing changes there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The indexes of revisions 0001 and 0003, one per model dimension, with 0003's build parameters.
INDEXES = {"arcface": 512, "dlib": 128}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for model in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS ix_face_templates_hnsw_{model}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for model, dim in INDEXES.items():
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_face_templates_hnsw_{model} ON face_templates "
            f"USING hnsw ((vector::vector({dim})) vector_cosine_ops) WITH (m = 32, ef_construction = 200) "
            f"WHERE model_id = '{model}'"
        )
