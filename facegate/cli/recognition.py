"""``facegate enroll|verify|identify`` and ``facegate subject list|show|delete``: a gallery's
people, on the local database or on a server with ``--server``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import backend, clear_errors, out, print_json

subject_app = typer.Typer(help="A gallery's subjects: list, show, delete.", no_args_is_help=True)
Photo = Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A photo file.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def enroll(
    gallery: str,
    subject: str,
    photos: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Photos of the person.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    face_index: Annotated[int | None, typer.Option("--face-index", help="Which face when a photo holds several.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Enroll photos of a subject (created if new); each is accepted or rejected with a reason. Exit 1 if none is accepted."""
    with clear_errors():
        report = backend().enroll(gallery, subject, list(photos), display_name=name, face_index=face_index)
    if as_json:
        print_json(report)
    else:
        out.print(f"{report.subject}: {report.accepted} accepted, {report.rejected} rejected, {report.skipped} skipped"
                  + (" (new subject)" if report.created_subject else ""))
        for item in report.items:
            if item.status != "accepted":
                out.print(f"  {item.image}: {item.status} ({item.code}) {item.reason}")
    if report.accepted == 0:
        raise typer.Exit(code=1)


def verify(
    gallery: str,
    subject: str,
    photo: Photo,
    far: Annotated[float | None, typer.Option("--far", help="False-accept rate (default: the gallery's).")] = None,
    as_json: JsonOption = False,
) -> None:
    """1:1: is the photo this subject? Exit code 1 when it is not."""
    with clear_errors():
        result = backend().verify(gallery, subject, photo, far=far)
    if as_json:
        print_json(result)
    else:
        colour = "green" if result.match else "red"
        out.print(f"[bold {colour}]{'match' if result.match else 'no match'}[/]: {subject}, score {result.score:.4f}, "
                  f"threshold {result.threshold.threshold:.4f} (decision {result.decision_id})")
    if not result.match:
        raise typer.Exit(code=1)


def identify(
    gallery: str,
    photo: Photo,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=50, help="Candidates to list.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """1:N: who in the gallery is this? Exit code 1 when nobody is over the threshold."""
    with clear_errors():
        result = backend().identify(gallery, photo, top_k=top_k)
    main = result.main_face()
    if as_json:
        print_json(result)
    else:
        out.print(f"{len(result.faces)} face(s), threshold {result.threshold.threshold:.4f} "
                  f"over {result.gallery_templates} templates (decision {result.decision_id})")
        for i, face in enumerate(result.faces, start=1):
            who = f"[bold green]{face.subject}[/] ({face.display_name or '-'})" if face.decision == "match" else "unknown"
            ranked = ", ".join(f"{c.subject} {c.score:.3f}" for c in face.candidates) or "no candidate"
            out.print(f"  {i}. {who}{' (main face)' if face is main else ''}: {ranked}")
    if main is None or main.decision != "match":
        raise typer.Exit(code=1)


@subject_app.command("list")
def subject_list(gallery: str, as_json: JsonOption = False) -> None:
    """Every subject of a gallery with its template count."""
    with clear_errors():
        subjects = backend().subjects(gallery)
    if as_json:
        out.print_json(json.dumps([s.model_dump(mode="json") for s in subjects]))
        return
    table = Table(title=f"subjects of {gallery}")
    for col in ("id", "name", "templates", "created"):
        table.add_column(col)
    for s in subjects:
        table.add_row(s.external_id, s.display_name, str(s.templates), s.created_at.isoformat(timespec="seconds"))
    out.print(table)


@subject_app.command("show")
def subject_show(gallery: str, subject: str) -> None:
    with clear_errors():
        print_json(backend().subject(gallery, subject))


@subject_app.command("delete")
def subject_delete(gallery: str, subject: str) -> None:
    """Delete a subject and erase every template of it."""
    with clear_errors():
        result = backend().delete_subject(gallery, subject)
    out.print(f"{subject} deleted, {result['templates_erased']} template(s) erased")
