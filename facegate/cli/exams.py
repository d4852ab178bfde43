"""The exam workflow's commands: ``facegate roster import``, ``facegate session create|list``,
``facegate checkin`` and ``facegate attendance export``; thin shells over the same workflow
methods the API calls, on the local database as the system, or on a server with ``--server``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import backend, clear_errors, console, out, print_json

roster_app = typer.Typer(help="Exam rosters: import students and their photos from a CSV.", no_args_is_help=True)
session_app = typer.Typer(help="Exam sessions: create and list.", no_args_is_help=True)
attendance_app = typer.Typer(help="Attendance of an exam session.", no_args_is_help=True)


@roster_app.command("import")
def roster_import(
    gallery: str,
    csv_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="student_id,name,photo (a file or folder, relative to the CSV).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create or update every student and enroll their photos; bad rows are listed, the rest imported."""
    with clear_errors():
        report = backend().import_roster(gallery, csv_file)
    if as_json:
        print_json(report)
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
    course: Annotated[str, typer.Option("--course")],
    start: Annotated[str, typer.Option("--start", help="ISO time, e.g. 2026-12-01T09:00 (local time unless an offset is given).")],
    end: Annotated[str, typer.Option("--end")],
    room: Annotated[str, typer.Option("--room")] = "",
    online: Annotated[bool, typer.Option("--online", help="A remote exam with webcam re-verification.")] = False,
    reverify: Annotated[int, typer.Option("--reverify", help="Online: random re-verifications per student.")] = 0,
    window: Annotated[float, typer.Option("--window", help="Online: seconds a student has to answer one.")] = 120.0,
    students: Annotated[list[str] | None, typer.Option("--student", help="Expected student (repeat); default: all.")] = None,
) -> None:
    """Create an exam session."""
    from facegate.workflows.exam import ExamSessionIn

    with clear_errors():
        data = ExamSessionIn(code=code, course=course, room=room, starts_at=_when(start), ends_at=_when(end),
                             online=online, reverify_random=reverify, reverify_window_s=window, students=students or None)
        created = backend().create_exam_session(gallery, data)
    out.print(f"session {created.code}: {created.course} in {created.room or '-'}, "
              f"{created.starts_at.isoformat(timespec='minutes')} to {created.ends_at.isoformat(timespec='minutes')}")


@session_app.command("list")
def session_list(gallery: str) -> None:
    with clear_errors():
        sessions = backend().exam_sessions(gallery)
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
    photo: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    kiosk: Annotated[str, typer.Option("--kiosk")] = "cli",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check a student in: their id and a live photo. Exit code 1 when not admitted."""
    with clear_errors():
        result = backend().checkin(gallery, session, student_id, photo, kiosk=kiosk)
    if as_json:
        print_json(result)
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
    out_file: Annotated[Path | None, typer.Option("--out", "-o", help="Write the CSV here (default: standard output).")] = None,
) -> None:
    """The session's attendance as CSV: one row per expected student."""
    with clear_errors():
        text = backend().attendance_csv(gallery, session)
    if out_file:
        out_file.write_text(text)
        console.print(f"wrote {out_file} ({text.count(chr(10)) - 1} students)")
    else:
        typer.echo(text, nl=False)
