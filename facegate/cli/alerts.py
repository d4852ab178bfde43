"""The alert and lockout commands of the workflows: ``facegate alerts list|ack`` and
``facegate lockout list|clear``, on the local database as the system or on a server with ``--server``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import backend, clear_errors, out

alerts_app = typer.Typer(help="Alerts raised by the workflows: list and acknowledge.", no_args_is_help=True)
lockout_app = typer.Typer(help="Identities locked after repeated failures: list and clear.", no_args_is_help=True)


@alerts_app.command("list")
def alerts_list(
    gallery: str,
    unacknowledged: Annotated[bool, typer.Option("--unacked", help="Only alerts nobody acknowledged.")] = False,
    kind: Annotated[str | None, typer.Option("--kind")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
) -> None:
    with clear_errors():
        alerts = backend().alerts(gallery, kind=kind, unacknowledged=unacknowledged, max_items=limit)
    table = Table()
    for col in ("id", "time", "kind", "severity", "subject", "message", "ack", "webhook"):
        table.add_column(col, overflow="fold")
    for a in alerts:
        table.add_row(str(a.id), a.created_at.isoformat(timespec="seconds"), a.kind, a.severity, a.subject or "-",
                      a.message, a.acknowledged_by or "", a.delivery_status)
    out.print(table)


@alerts_app.command("ack")
def alerts_ack(gallery: str, alert_id: int, by: Annotated[str, typer.Option("--by")] = "admin") -> None:
    with clear_errors():
        alert = backend().ack_alert(gallery, alert_id, by)
    out.print(f"alert {alert.id} acknowledged by {alert.acknowledged_by}")


@lockout_app.command("list")
def lockout_list(gallery: str) -> None:
    with clear_errors():
        locks = backend().lockouts(gallery)
    for lock in locks:
        out.print(f"{lock.identity}: locked {lock.locked_at.isoformat(timespec='seconds')}: {lock.reason}")
    if not locks:
        out.print("no identity is locked")


@lockout_app.command("clear")
def lockout_clear(gallery: str, identity: str, by: Annotated[str, typer.Option("--by")] = "admin") -> None:
    with clear_errors():
        lock = backend().clear_lockout(gallery, identity, by=by)
    out.print(f"{lock.identity} cleared by {lock.cleared_by}")
