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
    workers_threads: Annotated[int, typer.Option("--threads", help="Worker threads for requests (per process).")] = 8,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, help="Server processes sharing the port (PostgreSQL is the backend for several).")] = 1,
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
        if workers == 1:
            uvicorn.run(create_app(service, worker_threads=workers_threads), host=host, port=port, log_level="info")
            return
        prepare_workers(service, workers, workers_threads)
        service.close()  # each worker builds its own service, engines and background worker
    # Import string + factory: uvicorn starts each worker as a fresh (spawned) process, which
    # builds its app with facegate.api.app.worker_app; the parent only supervises (it restarts
    # a worker that dies, and stops them all on SIGINT / SIGTERM).
    uvicorn.run("facegate.api.app:worker_app", factory=True, workers=workers, host=host, port=port, log_level="info")


def prepare_workers(service: GalleryService, workers: int, threads: int) -> None:
    """What the workers must not race to create, made once here: the token key file (the
    template key exists: the service above read or created it). Passes the thread cap on and
    says which backend several workers want."""
    import os

    from facegate.api.app import WORKER_THREADS_ENV
    from facegate.workflows.accounts import load_secret_key

    load_secret_key(service.settings)
    os.environ[WORKER_THREADS_ENV] = str(threads)
    if service.ctx.db.dialect.name == "sqlite":
        out.print(
            f"[yellow]note[/]: {workers} workers share one SQLite file (WAL: one writer at a time, every "
            "other writer waits). PostgreSQL (FACEGATE_DATABASE_URL) is the backend for several workers."
        )
    out.print(f"{workers} worker processes; each has its own models, caches and rate limits (README: Several workers)")
