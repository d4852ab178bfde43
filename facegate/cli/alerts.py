"""The alert and lockout commands of the workflows: ``facegate alerts list|ack`` and
``facegate lockout list|clear``, on the local database as the system."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import build_workflows, clear_errors, out
from facegate.security import SYSTEM

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
        page = build_workflows().alerts.list_alerts(
            gallery, limit=limit, kind=kind, unacknowledged=unacknowledged, principal=SYSTEM)
    table = Table()
    for col in ("id", "time", "kind", "severity", "subject", "message", "ack", "webhook"):
        table.add_column(col, overflow="fold")
    for a in page.items:
        table.add_row(str(a.id), a.created_at.isoformat(timespec="seconds"), a.kind, a.severity, a.subject or "-",
                      a.message, a.acknowledged_by or "", a.delivery_status)
    out.print(table)


@alerts_app.command("ack")
def alerts_ack(gallery: str, alert_id: int, by: Annotated[str, typer.Option("--by")] = "admin") -> None:
    with clear_errors():
        alert = build_workflows().alerts.acknowledge(gallery, alert_id, by, principal=SYSTEM)
    out.print(f"alert {alert.id} acknowledged by {alert.acknowledged_by}")


@lockout_app.command("list")
def lockout_list(gallery: str) -> None:
    with clear_errors():
        locks = build_workflows().lockout.list_lockouts(gallery, principal=SYSTEM)
    for lock in locks:
        out.print(f"{lock.identity}: locked {lock.locked_at.isoformat(timespec='seconds')}: {lock.reason}")
    if not locks:
        out.print("no identity is locked")


@lockout_app.command("clear")
def lockout_clear(gallery: str, identity: str, by: Annotated[str, typer.Option("--by")] = "admin") -> None:
    with clear_errors():
        lock = build_workflows().lockout.clear(gallery, identity, by=by, principal=SYSTEM)
    out.print(f"{lock.identity} cleared by {lock.cleared_by}")
