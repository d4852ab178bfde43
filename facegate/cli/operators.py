"""``facegate operator create|list|delete|password``: the people who sign in, on the local database
or, with ``--server``, on a FaceGate server (an admin key)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from facegate.cli.common import backend, clear_errors, console, out

operator_app = typer.Typer(help="Create, list and delete operators (people who sign in), set passwords.",
                           no_args_is_help=True)

PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")]


def _password(from_stdin: bool) -> str:
    """From stdin (scripts) or a hidden prompt typed twice, never from a command-line argument
    (which other users see in the process list and the shell keeps in its history)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@operator_app.command("create")
def operator_create(
    username: str,
    role: Annotated[str, typer.Option("--role", help="admin, proctor or lead.")] = "proctor",
    gallery: Annotated[str | None, typer.Option("--gallery", help="Bind the operator to one gallery.")] = None,
    display_name: Annotated[str, typer.Option("--name", help="The person's name, as shown.")] = "",
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an operator; the password (10 to 1024 characters) is asked for, hidden."""
    with clear_errors():
        created = backend().create_operator(username, _password(password_stdin), role, gallery,
                                            display_name=display_name)
        out.print(f"operator {created.username} ({created.role}{', gallery ' + created.gallery if created.gallery else ''})"
                  " created")


@operator_app.command("list")
def operator_list() -> None:
    """Every operator: name, role, gallery, locked or not, last sign-in."""
    with clear_errors():
        for op in backend().operators():
            last = f"{op.last_login_at:%Y-%m-%d %H:%M}" if op.last_login_at else "never"
            state = "locked" if op.locked else "active"
            out.print(f"{op.username}\t{op.role}\t{op.gallery or '*'}\t{state}\tlast sign-in {last}\t{op.display_name}")


@operator_app.command("delete")
def operator_delete(username: str) -> None:
    """Delete an operator and end its sessions."""
    with clear_errors():
        backend().delete_operator(username)
        out.print(f"operator {username} deleted")


@operator_app.command("password")
def operator_password(username: str, password_stdin: PasswordStdin = False) -> None:
    """Set an operator's password: ends its sessions and lifts a lock."""
    with clear_errors():
        backend().set_operator_password(username, _password(password_stdin))
        console.print(f"password of {username} set; its sessions were ended")
