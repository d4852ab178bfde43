"""Exam rosters: a ``student_id,name,photo`` CSV read into rows (photo cells resolved from a
folder on disk or from uploaded files), then imported as students with their photos.
A bad row is reported and skipped; it never stops the import."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate.errors import InvalidRequestError, NotFoundError
from facegate.evaluation.datasets import IMAGE_SUFFIXES
from facegate.gallery.service import GalleryService, PhotoInput
from facegate.security import Principal
from facegate.storage.models import Subject
from facegate.workflows.accounts import USER_PREFIX

ROSTER_COLUMNS = ("student_id", "name", "photo")


@dataclass
class RosterRow:
    line: int
    student_id: str
    name: str
    photos: list[PhotoInput] = field(default_factory=list)
    error: str = ""


class RosterError(BaseModel):
    line: int
    student_id: str
    code: str
    message: str


class RosterReport(BaseModel):
    rows: int
    students_created: int
    students_updated: int
    photos_accepted: int
    photos_skipped: int
    photos_rejected: int
    errors: list[RosterError]


def parse_roster(text: str, resolve: Callable[[str], list[PhotoInput]]) -> list[RosterRow]:
    """Rows of a ``student_id,name,photo`` CSV; ``resolve`` turns a photo cell (a file or a
    folder) into photos. A bad row carries its error instead of stopping the import."""
    # newline="": the csv module sees the file's own line ends (CR, LF, CRLF; and CR or LF
    # inside quoted fields) as it expects to.
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        return _rows(reader, resolve)
    except csv.Error as exc:
        raise InvalidRequestError(f"the roster is not a readable CSV (line {reader.line_num}: {exc})") from None


def _rows(reader: csv.DictReader, resolve: Callable[[str], list[PhotoInput]]) -> list[RosterRow]:
    missing = [c for c in ROSTER_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise InvalidRequestError(
            f"roster CSV lacks the column(s) {', '.join(missing)}; expected header: student_id,name,photo"
        )
    rows: list[RosterRow] = []
    for row in reader:
        line = reader.line_num
        student_id = (row.get("student_id") or "").strip()
        item = RosterRow(line=line, student_id=student_id, name=(row.get("name") or "").strip())
        photo_cell = (row.get("photo") or "").strip()
        if not student_id or "/" in student_id or any(ord(c) < 32 or ord(c) == 127 for c in student_id):
            item.error = "student_id is empty or contains '/' or a control character"
        elif len(student_id) > 200:
            item.error = "student_id is longer than 200 characters"
        elif not photo_cell:
            item.error = "no photo given"
        else:
            try:
                item.photos = resolve(photo_cell)
                if not item.photos:
                    item.error = f"no photo found at {photo_cell!r}"
            except (OSError, FileNotFoundError, InvalidRequestError) as exc:
                item.error = str(exc)
        rows.append(item)
    return rows


def folder_resolver(base: Path, max_bytes: int) -> Callable[[str], list[PhotoInput]]:
    """Photo cells as paths relative to the CSV's folder: one file, or every image in a folder."""

    def read(path: Path) -> PhotoInput:
        if path.stat().st_size > max_bytes:
            raise InvalidRequestError(f"{path} is over the {max_bytes // (1024 * 1024)} MiB limit")
        return PhotoInput(name=str(path), data=path.read_bytes())

    def resolve(cell: str) -> list[PhotoInput]:
        path = (base / cell).resolve()
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | {""})
            return [read(p) for p in files]
        if not path.exists():
            raise InvalidRequestError(f"photo {cell!r} not found (looked at {path})")
        return [read(path)]

    return resolve


def upload_resolver(uploads: list[PhotoInput]) -> Callable[[str], list[PhotoInput]]:
    """Photo cells naming uploaded files: an exact file name, or a folder prefix ``dir/``."""
    by_name = {u.name: u for u in uploads}

    def resolve(cell: str) -> list[PhotoInput]:
        if cell in by_name:
            return [by_name[cell]]
        prefix = cell.rstrip("/") + "/"
        found = [u for name, u in sorted(by_name.items()) if name.startswith(prefix)]
        if not found:
            raise InvalidRequestError(f"photo {cell!r} is not among the uploaded files")
        return found

    return resolve


def read_roster_file(path: Path, max_bytes: int) -> list[RosterRow]:
    """The CLI's way in: a CSV on disk, photo cells relative to its folder."""
    return parse_roster(path.read_text(encoding="utf-8"), folder_resolver(path.parent, max_bytes))


def import_roster(
    gs: GalleryService,
    gallery: str,
    rows: list[RosterRow],
    progress: Callable[[int], None] | None,
    principal: Principal,
) -> RosterReport:
    """Create or update each student and enroll their photos. A bad row is reported and
    skipped; a re-import updates names and skips photos already enrolled (same bytes)."""
    errors: list[RosterError] = []
    created = updated = accepted = skipped = rejected = 0
    first_line: dict[str, int] = {}
    for row in rows:
        try:
            if row.error:
                errors.append(RosterError(line=row.line, student_id=row.student_id, code="invalid_row", message=row.error))
                continue
            if row.student_id in first_line:  # never let a later row rename the student of an earlier one
                errors.append(RosterError(
                    line=row.line, student_id=row.student_id, code="duplicate_id",
                    message=f"student id {row.student_id!r} is already on line {first_line[row.student_id]}; "
                            "this row was skipped",
                ))
                continue
            first_line[row.student_id] = row.line
            try:
                gs.get_subject(gallery, row.student_id, principal=principal)
                exists = True
            except NotFoundError:
                exists = False
            # The name is updated; a new student is created with their first accepted photo, so
            # a row whose photos all fail leaves no empty student behind (it is reported below).
            report = gs.enroll(gallery, row.student_id, row.photos, display_name=row.name,
                               attributes=None if exists else {"role": "student"}, create_subject=True,
                               principal=principal)
            updated += exists
            created += report.created_subject
            accepted += report.accepted
            skipped += report.skipped
            rejected += report.rejected
            for item in report.items:
                if item.status == "rejected":
                    errors.append(RosterError(line=row.line, student_id=row.student_id, code=item.code or "rejected",
                                              message=f"{item.image}: {item.reason}"))
        finally:
            if progress:
                progress(1)
    return RosterReport(
        rows=len(rows), students_created=created, students_updated=updated, photos_accepted=accepted,
        photos_skipped=skipped, photos_rejected=rejected, errors=errors,
    )


def student_subject(session: Session, gallery_id: int, student_id: str) -> str | None:
    """The subject a student id names: the subject of that id, else the self-enrolled account
    whose username it is (subject ``user:<id>``), so a student who enrolled on the enrollment
    page with their student number as username checks in with that number."""
    for external_id in (student_id, USER_PREFIX + student_id):
        if session.scalar(
            select(Subject.id).where(Subject.gallery_id == gallery_id, Subject.external_id == external_id)
        ) is not None:
            return external_id
    return None
