"""``facegate serve``: migrate the database, then serve the REST API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from facegate.cli.common import build_service, clear_errors, database_url, out
from facegate.security import SYSTEM

if TYPE_CHECKING:
    from facegate.gallery.service import GalleryService


def announce_first_admin(service: GalleryService) -> str | None:
    """With no operator yet, create ``admin`` with a random password and print it once (people
    sign in to the admin pages; machines keep using API keys). Returns the password, or None."""
    from facegate.gallery import operators

    password = operators.ensure_first_admin(service.ctx)
    if password is not None:
        out.print(
            "[bold]First start: an operator 'admin' was created to sign in to /admin. Its password is shown "
            "only now:[/]\n"
            f"  {password}\n"
            "Change it with 'facegate operator password admin'; add people with 'facegate operator create'."
        )
    return password


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers_threads: Annotated[int, typer.Option("--threads", help="Worker threads for requests.")] = 8,
) -> None:
    """Start the REST API (docs at /docs). Prints a first admin key and admin password on the very first start."""
    import uvicorn

    from facegate.api import create_app
    from facegate.config import get_settings
    from facegate.storage.db import upgrade

    with clear_errors():
        upgrade(database_url(get_settings()))  # the server always migrates at start
        service = build_service()
        if not service.has_any_api_key():
            key = service.create_api_key("first admin", ["admin"], principal=SYSTEM)
            out.print(
                "[bold]First start: an admin API key was created. It is shown only now; keep it safe:[/]\n"
                f"  {key.secret}\n"
                "Send it in the X-API-Key header. Make more with 'facegate key create'."
            )
        announce_first_admin(service)
        out.print(f"database: {service.ctx.db.dialect.name}; data folder: {service.settings.data_dir.resolve()}")
        out.print(f"FaceGate API on http://{host}:{port}/api/v1 (docs: http://{host}:{port}/docs)")
        uvicorn.run(create_app(service, worker_threads=workers_threads), host=host, port=port, log_level="info")
