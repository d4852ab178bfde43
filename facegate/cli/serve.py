"""``facegate serve``: migrate the database, then serve the REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from facegate.cli.common import build_service, clear_errors, database_url, out
from facegate.security import SYSTEM


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers_threads: Annotated[int, typer.Option("--threads", help="Worker threads for requests.")] = 8,
) -> None:
    """Start the REST API (docs at /docs). Prints a first admin key on the very first start."""
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
        out.print(f"database: {service.ctx.db.dialect.name}; data folder: {service.settings.data_dir.resolve()}")
        out.print(f"FaceGate API on http://{host}:{port}/api/v1 (docs: http://{host}:{port}/docs)")
        uvicorn.run(create_app(service, worker_threads=workers_threads), host=host, port=port, log_level="info")
