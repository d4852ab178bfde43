"""``facegate db upgrade|downgrade``: Alembic migrations of the configured database."""

from __future__ import annotations

from typing import Annotated

import typer

from facegate.cli.common import database_url, out

db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the configured database up to a revision (default: head)."""
    from facegate.config import get_settings
    from facegate.storage.db import upgrade

    upgrade(database_url(get_settings()), revision)
    out.print(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()] = "base") -> None:
    """Migrate the configured database down to a revision (default: base, an empty schema)."""
    from facegate.config import get_settings
    from facegate.storage.db import downgrade

    downgrade(database_url(get_settings()), revision)
    out.print(f"database at {revision}")


@db_app.command("purge")
def db_purge() -> None:
    """Apply every gallery's retention now: drop old probe templates and decisions (the server's
    background worker does this every hour)."""
    from facegate.cli.common import build_service, clear_errors
    from facegate.gallery.retention import apply_retention

    with clear_errors():
        counts = apply_retention(build_service().ctx)
    out.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in counts.items()))
