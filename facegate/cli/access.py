"""The access workflow's commands: ``facegate access grant|check``, on the local database as
the system, or on a server with ``--server``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facegate.cli.common import backend, clear_errors, out, print_json

access_app = typer.Typer(help="Team access rights: grant rights, check a photo at the door.", no_args_is_help=True)


@access_app.command("grant")
def access_grant(
    gallery: str,
    member: str,
    rights: Annotated[list[str], typer.Argument(help="The member's rights (replacing the present ones), e.g. lab:enter.")],
    name: Annotated[str, typer.Option("--name", help="Display name, when the member is new.")] = "",
) -> None:
    """Create a member with rights, or replace an existing member's rights."""
    with clear_errors():
        door = backend()
        try:
            subject = door.set_rights(gallery, member, rights)
        except Exception as exc:  # NotFoundError locally, a 404 from a server
            if getattr(exc, "code", None) != "not_found":
                raise
            subject = door.create_member(gallery, member, name, rights)
    out.print(f"{subject.external_id}: {', '.join(subject.attributes.get('rights', []))}")


@access_app.command("check")
def access_check(
    gallery: str,
    photo: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    right: Annotated[str | None, typer.Option("--right", help="The right asked for, e.g. lab:enter.")] = None,
    where: Annotated[str, typer.Option("--where")] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Granted or denied, who, which rights, the score. Exit code 1 when denied."""
    with clear_errors():
        result = backend().access_check(gallery, photo, right=right, where=where)
    if as_json:
        print_json(result)
    else:
        verdict = "[bold green]GRANTED[/]" if result.granted else "[bold red]DENIED[/]"
        who = f"{result.subject} ({result.display_name})" if result.subject else "unknown person"
        score = f"{result.score:.3f}" if result.score is not None else "-"
        out.print(f"{verdict} {who}; rights: {', '.join(result.rights) or '-'}; score {score} "
                  f"(threshold {result.threshold:.3f}); {result.reason}")
    if not result.granted:
        raise typer.Exit(code=1)
