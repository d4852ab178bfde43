"""``facegate key create|list|revoke``: API keys on the local database, or on a server with ``--server``."""

from __future__ import annotations

from typing import Annotated

import typer

from facegate.cli.common import backend, clear_errors, console, out

key_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Option("--name", help="Who or what the key is for.")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated: admin, enroll, recognize.")] = "recognize",
    gallery: Annotated[str | None, typer.Option("--gallery", help="Bind the key to one gallery.")] = None,
) -> None:
    """Create an API key; the secret is printed once and only its hash is stored."""
    with clear_errors():
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        key = backend().create_key(name, wanted, gallery)
        out.print(f"API key {key.id} ({', '.join(key.scopes)}{', gallery ' + key.gallery if key.gallery else ''}):")
        out.print(key.secret)
        console.print("This secret is shown once; store it now.")


@key_app.command("list")
def key_list() -> None:
    with clear_errors():
        for key in backend().keys():
            state = "revoked" if key.revoked else "active"
            out.print(f"{key.id}\tfg_{key.prefix}_…\t{','.join(key.scopes)}\t{key.gallery or '*'}\t{state}\t{key.name}")


@key_app.command("revoke")
def key_revoke(key_id: int) -> None:
    with clear_errors():
        backend().revoke_key(key_id)
        out.print(f"API key {key_id} revoked")
