"""CLI commands of the workflows: thin shells over the same workflow methods the API calls.

``facegate roster import``, ``facegate session create|list``, ``facegate checkin``,
``facegate attendance export``, ``facegate access check|grant``, ``facegate alerts list|ack``,
``facegate lockout list|clear``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

roster_app = typer.Typer(help="Exam rosters: import students and their photos from a CSV.", no_args_is_help=True)
session_app = typer.Typer(help="Exam sessions: create and list.", no_args_is_help=True)
attendance_app = typer.Typer(help="Attendance of an exam session.", no_args_is_help=True)
access_app = typer.Typer(help="Team access rights: grant rights, check a photo at the door.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts raised by the workflows: list and acknowledge.", no_args_is_help=True)
lockout_app = typer.Typer(help="Identities locked after repeated failures: list and clear.", no_args_is_help=True)


def _workflows():
    from facegate.cli import _service
    from facegate.workflows import Workflows

    return Workflows(_service())


def _photo(path: Path):
    from facegate.gallery.service import PhotoInput

    return PhotoInput(name=str(path), data=path.read_bytes())


def _print_json(model) -> None:
    from facegate.cli import out

    out.print_json(model.model_dump_json() if hasattr(model, "model_dump_json") else json.dumps(model, default=str))


@roster_app.command("import")
def roster_import(
    gallery: str,
    csv_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="student_id,name,photo (a file or folder, relative to the CSV)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create or update every student and enroll their photos; bad rows are listed, the rest imported."""
    from facegate.cli import clear_errors, out, progress_bar
    from facegate.workflows.exam import read_roster_file

    with clear_errors():
        wf = _workflows()
        rows = read_roster_file(csv_file, wf.gallery.settings.max_image_bytes)
        with progress_bar("importing roster", len(rows)) as advance:
            report = wf.exams.import_roster(gallery, rows, progress=lambda n: advance())
    if as_json:
        _print_json(report)
        return
    out.print(
        f"{report.rows} rows: {report.students_created} students created, {report.students_updated} updated; "
        f"photos {report.photos_accepted} enrolled, {report.photos_skipped} already enrolled, {report.photos_rejected} rejected"
    )
    if report.errors:
        table = Table(title=f"{len(report.errors)} problem(s)")
        for col in ("line", "student", "code", "message"):
            table.add_column(col, overflow="fold")
        for e in report.errors:
            table.add_row(str(e.line), e.student_id, e.code, e.message)
        out.print(table)


def _when(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.astimezone()  # a naive time is the machine's local time


@session_app.command("create")
def session_create(
    gallery: str,
    code: str,
    course: str = typer.Option(..., "--course"),
    start: str = typer.Option(..., "--start", help="ISO time, e.g. 2026-12-01T09:00 (local time unless an offset is given)."),
    end: str = typer.Option(..., "--end"),
    room: str = typer.Option("", "--room"),
    online: bool = typer.Option(False, "--online", help="A remote exam with webcam re-verification."),
    reverify: int = typer.Option(0, "--reverify", help="Online: random re-verifications per student."),
    window: float = typer.Option(120.0, "--window", help="Online: seconds a student has to answer one."),
    students: Optional[list[str]] = typer.Option(None, "--student", help="Expected student (repeat); default: all."),
) -> None:
    """Create an exam session."""
    from facegate.cli import clear_errors, out
    from facegate.workflows.exam import ExamSessionIn

    with clear_errors():
        data = ExamSessionIn(code=code, course=course, room=room, starts_at=_when(start), ends_at=_when(end),
                             online=online, reverify_random=reverify, reverify_window_s=window, students=students or None)
        created = _workflows().exams.create_session(gallery, data)
    out.print(f"session {created.code}: {created.course} in {created.room or '-'}, "
              f"{created.starts_at.isoformat(timespec='minutes')} to {created.ends_at.isoformat(timespec='minutes')}")


@session_app.command("list")
def session_list(gallery: str) -> None:
    from facegate.cli import clear_errors, out

    with clear_errors():
        sessions = _workflows().exams.list_sessions(gallery)
    table = Table()
    for col in ("code", "course", "room", "starts", "ends", "online"):
        table.add_column(col)
    for s in sessions:
        table.add_row(s.code, s.course, s.room, s.starts_at.isoformat(timespec="minutes"),
                      s.ends_at.isoformat(timespec="minutes"), "yes" if s.online else "no")
    out.print(table)


def checkin(
    gallery: str,
    session: str,
    student_id: str,
    photo: Path = typer.Argument(..., exists=True, dir_okay=False),
    kiosk: str = typer.Option("cli", "--kiosk"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check a student in: their id and a live photo. Exit code 1 when not admitted."""
    from facegate.cli import clear_errors, out

    with clear_errors():
        result = _workflows().exams.checkin(gallery, session, student_id, _photo(photo), kiosk=kiosk)
    if as_json:
        _print_json(result)
    else:
        colour = "green" if result.admitted else "red"
        score = f" (score {result.score:.3f}, threshold {result.threshold:.3f})" if result.score is not None else ""
        out.print(f"[bold {colour}]{result.status}[/]: {result.message}{score}")
        for alert in result.alerts:
            out.print(f"  alert raised: {alert}")
    if not result.admitted:
        raise typer.Exit(code=1)


@attendance_app.command("export")
def attendance_export(
    gallery: str,
    session: str,
    out_file: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the CSV here (default: standard output)."),
) -> None:
    """The session's attendance as CSV: one row per expected student."""
    from facegate.cli import clear_errors, console

    with clear_errors():
        text = _workflows().exams.attendance_csv(gallery, session)
    if out_file:
        out_file.write_text(text)
        console.print(f"wrote {out_file} ({text.count(chr(10)) - 1} students)")
    else:
        typer.echo(text, nl=False)


@access_app.command("grant")
def access_grant(
    gallery: str,
    member: str,
    rights: list[str] = typer.Argument(..., help="The member's rights (replacing the present ones), e.g. lab:enter."),
    name: str = typer.Option("", "--name", help="Display name, when the member is new."),
) -> None:
    """Create a member with rights, or replace an existing member's rights."""
    from facegate.cli import clear_errors, out
    from facegate.errors import NotFoundError
    from facegate.workflows.access import MemberIn

    with clear_errors():
        wf = _workflows()
        try:
            subject = wf.access.set_rights(gallery, member, rights)
        except NotFoundError:
            subject = wf.access.create_member(gallery, MemberIn(external_id=member, display_name=name, rights=rights))
    out.print(f"{subject.external_id}: {', '.join(subject.attributes.get('rights', []))}")


@access_app.command("check")
def access_check(
    gallery: str,
    photo: Path = typer.Argument(..., exists=True, dir_okay=False),
    right: Optional[str] = typer.Option(None, "--right", help="The right asked for, e.g. lab:enter."),
    where: str = typer.Option("", "--where"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Granted or denied, who, which rights, the score. Exit code 1 when denied."""
    from facegate.cli import clear_errors, out

    with clear_errors():
        result = _workflows().access.check(gallery, _photo(photo), right=right, where=where)
    if as_json:
        _print_json(result)
    else:
        verdict = "[bold green]GRANTED[/]" if result.granted else "[bold red]DENIED[/]"
        who = f"{result.subject} ({result.display_name})" if result.subject else "unknown person"
        score = f"{result.score:.3f}" if result.score is not None else "-"
        out.print(f"{verdict} {who}; rights: {', '.join(result.rights) or '-'}; score {score} "
                  f"(threshold {result.threshold:.3f}); {result.reason}")
    if not result.granted:
        raise typer.Exit(code=1)


@alerts_app.command("list")
def alerts_list(
    gallery: str,
    unacknowledged: bool = typer.Option(False, "--unacked", help="Only alerts nobody acknowledged."),
    kind: Optional[str] = typer.Option(None, "--kind"),
    limit: int = typer.Option(50, "--limit"),
) -> None:
    from facegate.cli import clear_errors, out

    with clear_errors():
        page = _workflows().alerts.list_alerts(gallery, limit=limit, kind=kind, unacknowledged=unacknowledged)
    table = Table()
    for col in ("id", "time", "kind", "severity", "subject", "message", "ack", "webhook"):
        table.add_column(col, overflow="fold")
    for a in page.items:
        table.add_row(str(a.id), a.created_at.isoformat(timespec="seconds"), a.kind, a.severity, a.subject or "-",
                      a.message, a.acknowledged_by or "", a.delivery_status)
    out.print(table)


@alerts_app.command("ack")
def alerts_ack(gallery: str, alert_id: int, by: str = typer.Option("admin", "--by")) -> None:
    from facegate.cli import clear_errors, out

    with clear_errors():
        alert = _workflows().alerts.acknowledge(gallery, alert_id, by)
    out.print(f"alert {alert.id} acknowledged by {alert.acknowledged_by}")


@lockout_app.command("list")
def lockout_list(gallery: str) -> None:
    from facegate.cli import clear_errors, out

    with clear_errors():
        locks = _workflows().lockout.list_lockouts(gallery)
    for lock in locks:
        out.print(f"{lock.identity}: locked {lock.locked_at.isoformat(timespec='seconds')}: {lock.reason}")
    if not locks:
        out.print("no identity is locked")


@lockout_app.command("clear")
def lockout_clear(gallery: str, identity: str, by: str = typer.Option("admin", "--by")) -> None:
    from facegate.cli import clear_errors, out

    with clear_errors():
        lock = _workflows().lockout.clear(gallery, identity, by=by)
    out.print(f"{lock.identity} cleared by {lock.cleared_by}")


def register(app: typer.Typer) -> None:
    """Add the workflow commands to the main ``facegate`` app."""
    app.add_typer(roster_app, name="roster")
    app.add_typer(session_app, name="session")
    app.command("checkin")(checkin)
    app.add_typer(attendance_app, name="attendance")
    app.add_typer(access_app, name="access")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(lockout_app, name="lockout")
