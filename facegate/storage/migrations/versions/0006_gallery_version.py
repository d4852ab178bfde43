"""Gallery version and template count, kept by the database; a change log of templates; job leases.

Every insert, delete or change of a face template bumps its gallery's ``template_version`` and
keeps ``template_count`` exact, in the same statement (triggers, so that cascades, bulk loads
and raw SQL are counted too). Knowing whether an in-process index is current then costs one
primary-key read instead of a COUNT/MAX/SUM over the gallery's templates, and
``template_changes`` says what changed since a version, so a worker's index catches up by
reading the few templates added or removed rather than the whole gallery.

``job_leases``: one row per periodic job that must run on one worker at a time (the automatic
drift response); a worker acts only while it holds the lease.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

# SQLite has row triggers only. The subquery takes the version the UPDATE just wrote; a
# template of a gallery deleted in the same statement (a cascade) is logged nowhere.
SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER face_templates_version_insert AFTER INSERT ON face_templates
    BEGIN
        UPDATE galleries SET template_version = template_version + 1, template_count = template_count + 1
            WHERE id = NEW.gallery_id;
        INSERT INTO template_changes (gallery_id, version, template_id, op)
            SELECT id, template_version, NEW.id, 'add' FROM galleries WHERE id = NEW.gallery_id;
    END
    """,
    """
    CREATE TRIGGER face_templates_version_delete AFTER DELETE ON face_templates
    BEGIN
        UPDATE galleries SET template_version = template_version + 1, template_count = template_count - 1
            WHERE id = OLD.gallery_id;
        INSERT INTO template_changes (gallery_id, version, template_id, op)
            SELECT id, template_version, OLD.id, 'remove' FROM galleries WHERE id = OLD.gallery_id;
    END
    """,
    """
    CREATE TRIGGER face_templates_version_update AFTER UPDATE OF vector, subject_id, gallery_id, model_id
        ON face_templates
    BEGIN
        UPDATE galleries SET template_version = template_version + 1, template_count = template_count - 1
            WHERE id = OLD.gallery_id;
        INSERT INTO template_changes (gallery_id, version, template_id, op)
            SELECT id, template_version, OLD.id, 'remove' FROM galleries WHERE id = OLD.gallery_id;
        UPDATE galleries SET template_version = template_version + 1, template_count = template_count + 1
            WHERE id = NEW.gallery_id;
        INSERT INTO template_changes (gallery_id, version, template_id, op)
            SELECT id, template_version, NEW.id, 'add' FROM galleries WHERE id = NEW.gallery_id;
    END
    """,
]

# PostgreSQL: statement triggers over transition tables, so a bulk load of a million rows bumps
# the version once and logs its rows in one INSERT. The gallery row's lock orders the versions
# of concurrent writers by commit: a reader that sees version v sees every change up to v.


def _pg_log(rows: str, op_name: str, sign: str) -> str:
    """The body that bumps each touched gallery once and logs ``rows`` (a transition table)."""
    return f"""
        WITH c AS (SELECT gallery_id, count(*) AS n FROM {rows} GROUP BY gallery_id),
        g AS (
            UPDATE galleries SET template_version = template_version + 1,
                                 template_count = template_count {sign} c.n
            FROM c WHERE galleries.id = c.gallery_id
            RETURNING galleries.id, galleries.template_version
        )
        INSERT INTO template_changes (gallery_id, version, template_id, op)
            SELECT r.gallery_id, g.template_version, r.id, '{op_name}' FROM {rows} r JOIN g ON g.id = r.gallery_id;
    """


PG_FUNCTIONS = {
    "facegate_templates_inserted": ("INSERT", "REFERENCING NEW TABLE AS new_rows", _pg_log("new_rows", "add", "+")),
    "facegate_templates_deleted": ("DELETE", "REFERENCING OLD TABLE AS old_rows", _pg_log("old_rows", "remove", "-")),
    # Nothing updates a template in place today; should something, the old row is logged removed
    # and the new one added, so every index drops and re-reads it.
    "facegate_templates_updated": (
        "UPDATE", "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        _pg_log("old_rows", "remove", "-") + _pg_log("new_rows", "add", "+"),
    ),
}


def upgrade() -> None:
    op.add_column("galleries", sa.Column("template_version", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("galleries", sa.Column("template_count", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "template_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        # No foreign key: a gallery's delete cascades to its templates, whose triggers must not
        # log against the row going away; the log of a deleted gallery is dropped by retention.
        sa.Column("gallery_id", sa.Integer, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("template_id", sa.BigInteger, nullable=False),
        sa.Column("op", sa.String(10), nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.current_timestamp()),
    )
    op.create_index("ix_template_changes_gallery_version", "template_changes", ["gallery_id", "version"])
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False, server_default=""),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("last_run_at", TZ, nullable=True),
    )
    op.execute(
        "UPDATE galleries SET template_count = (SELECT count(*) FROM face_templates t WHERE t.gallery_id = galleries.id),"
        " template_version = 1 + (SELECT count(*) FROM face_templates t WHERE t.gallery_id = galleries.id)"
    )
    if op.get_bind().dialect.name == "postgresql":
        for name, (event, referencing, body) in PG_FUNCTIONS.items():
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$")
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON face_templates {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()")
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in PG_FUNCTIONS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON face_templates")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS face_templates_version_{name}")
    op.drop_table("job_leases")
    op.drop_index("ix_template_changes_gallery_version", table_name="template_changes")
    op.drop_table("template_changes")
    with op.batch_alter_table("galleries") as batch:
        batch.drop_column("template_count")
        batch.drop_column("template_version")
