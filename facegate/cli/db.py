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
