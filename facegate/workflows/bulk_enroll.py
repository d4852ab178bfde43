"""Bulk enrollment: many people's photos, from a folder per person or a roster CSV, into one
gallery, analysed in this process or on a local Ray cluster (:mod:`facegate.parallel`).

The database is the record of what is done. Before any analysis, each photo's bytes are
hashed and a photo whose hash is already stored for its subject is skipped ("already
enrolled"); every other photo is analysed once and its faces are handed, as a
:class:`~facegate.gallery.inputs.Probe`, to the gallery service's enrollment path, which
applies every rule (one face, quality, the same source twice, a match with another subject)
and commits each template in its own transaction. A run killed half-way and started again
therefore finishes the job with no doubles and no gaps.
"""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select

from facegate.errors import FaceGateError, InvalidRequestError
from facegate.evaluation.datasets import IMAGE_SUFFIXES
from facegate.gallery.context import find_gallery
from facegate.gallery.inputs import Probe
from facegate.gallery.schemas import EnrollStatus, check_subject_id
from facegate.gallery.service import GalleryService
from facegate.imaging import image_sha256, read_image_bytes
from facegate.parallel import Compute, EngineSpec, PhotoResult, PhotoTask, map_photos
from facegate.security import Principal
from facegate.storage.models import FaceTemplate, Subject

ROSTER_COLUMNS = ("subject_id", "photo")  # and optionally display_name
ALREADY_ENROLLED = "this photo is already enrolled"
REPORT_COLUMNS = ("subject", "photo", "status", "code", "reason", "template_id", "quality")


@dataclass
class SourcePhoto:
    """One photo of one subject as the source names it; ``error`` when the source itself is
    wrong for it (a bad roster row, a missing file)."""

    subject: str
    path: Path
    photo: str  # how the report names it: relative to the source
    display_name: str | None = None
    error_code: str = ""
    error: str = ""


class BulkItem(BaseModel):
    subject: str
    photo: str
    status: EnrollStatus
    code: str = ""
    reason: str = ""
    template_id: int | None = None
    quality: float | None = None


class BulkReport(BaseModel):
    gallery: str
    engine: str
    photos: int
    subjects: int
    accepted: int
    rejected: int
    skipped: int
    already_enrolled: int
    subjects_created: int
    seconds: float
    items: list[BulkItem]


# -- the source --------------------------------------------------------------------------------
def read_source(source: Path) -> list[SourcePhoto]:
    """A folder with one subfolder per person (the subfolder's name is the subject id), or a
    roster CSV (``subject_id,photo[,display_name]``, photo paths relative to the CSV)."""
    if source.is_dir():
        return _read_folder(source)
    if source.is_file():
        return _read_roster(source)
    raise InvalidRequestError(f"{source} not found: give a folder with one subfolder per person or a roster CSV")


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def _read_folder(root: Path) -> list[SourcePhoto]:
    photos = [
        SourcePhoto(person.name, image, f"{person.name}/{image.name}")
        for person in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for image in sorted(person.iterdir())
        if _is_image(image)
    ]
    if not photos:
        raise InvalidRequestError(f"{root}: no photo in a subfolder; expected {root}/<subject id>/<photo>")
    return photos


def _read_roster(path: Path) -> list[SourcePhoto]:
    try:
        text = path.read_text(encoding="utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        raise InvalidRequestError(f"{path} is neither a folder nor a UTF-8 roster CSV") from None
    reader = csv.DictReader(text.splitlines())
    try:
        missing = [c for c in ROSTER_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidRequestError(f"roster CSV {path} lacks the column(s) {', '.join(missing)}; "
                                      "expected header: subject_id,photo[,display_name]")
        photos: list[SourcePhoto] = []
        for row in reader:
            photos.extend(_roster_row(path.parent, reader.line_num, row))
    except csv.Error as exc:
        raise InvalidRequestError(f"{path} is not a readable CSV (line {reader.line_num}: {exc})") from None
    return photos


def _roster_row(base: Path, line: int, row: dict[str, str | None]) -> list[SourcePhoto]:
    """A row's photos: one file, or every image in a folder; a bad row is one rejected item."""
    subject, cell = (row.get("subject_id") or "").strip(), (row.get("photo") or "").strip()
    display_name = (row.get("display_name") or "").strip() or None
    item = SourcePhoto(subject, base / cell, cell or f"line {line}", display_name)
    if not subject or not cell:
        item.error_code, item.error = "invalid_row", f"line {line}: subject_id and photo are both required"
        return [item]
    path = base / cell
    if path.is_dir():
        found = [SourcePhoto(subject, p, f"{cell.rstrip('/')}/{p.name}", display_name)
                 for p in sorted(path.iterdir()) if _is_image(p)]
        if found:
            return found
        item.error_code, item.error = "file_not_found", f"line {line}: no photo in the folder {cell!r}"
    elif not path.exists():
        item.error_code, item.error = "file_not_found", f"line {line}: photo {cell!r} not found (looked at {path})"
    return [item]


# -- the job -----------------------------------------------------------------------------------
def bulk_enroll(
    gs: GalleryService,
    gallery: str,
    photos: Sequence[SourcePhoto],
    compute: Compute,
    *,
    principal: Principal,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[], None] | None = None,
) -> BulkReport:
    """Enroll every photo into ``gallery``: those already stored are skipped, the others are
    analysed (``compute``) and stored subject by subject through :meth:`GalleryService.enroll`."""
    started = time.perf_counter()
    with gs.ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("enroll", g)
    engine = gs.ctx.engine_for(g)
    if on_start:
        on_start(len(photos))
    plan = _plan(gs, g.id, photos)  # one item per photo; None: to analyse
    for item in plan:
        if item is not None and on_progress:
            on_progress()
    pending: dict[str, list[int]] = defaultdict(list)  # subject -> indices still to analyse
    for i, item in enumerate(plan):
        if item is None:
            pending[photos[i].subject].append(i)
    waiting = {subject: len(indices) for subject, indices in pending.items()}
    results: dict[int, PhotoResult] = {}
    tasks = [PhotoTask(i, str(photos[i].path), photos[i].photo) for indices in pending.values() for i in indices]
    created = 0
    for result in map_photos(tasks, EngineSpec.of(engine), "analyze", compute, engine=engine):
        results[result.key] = result
        subject = photos[result.key].subject
        waiting[subject] -= 1
        if waiting[subject] == 0:
            indices = pending.pop(subject)
            created += _store_subject(gs, gallery, photos, indices, results, plan, principal)
            for i in indices:
                results.pop(i, None)
                if on_progress:
                    on_progress()
    items = [item for item in plan if item is not None]
    if len(items) != len(photos):  # every analysed photo is stored or refused above
        raise RuntimeError(f"{len(photos) - len(items)} photo(s) came back from the analysis without a result")
    return BulkReport(
        gallery=gallery, engine=compute.engine, photos=len(photos), subjects=len({p.subject for p in photos}),
        accepted=sum(i.status == "accepted" for i in items), rejected=sum(i.status == "rejected" for i in items),
        skipped=sum(i.status == "skipped" for i in items),
        already_enrolled=sum(i.status == "skipped" and i.code == "duplicate" for i in items),
        subjects_created=created, seconds=round(time.perf_counter() - started, 3), items=items,
    )


def _plan(gs: GalleryService, gallery_id: int, photos: Sequence[SourcePhoto]) -> list[BulkItem | None]:
    """Each photo's fate when it is known before analysis (a source error, an invalid subject
    id, already enrolled); None for the photos to analyse."""
    items: list[BulkItem | None] = [None] * len(photos)
    hashes: dict[int, str] = {}
    for i, photo in enumerate(photos):
        if photo.error_code:
            items[i] = _item(photo, "rejected", photo.error_code, photo.error)
            continue
        try:
            check_subject_id(photo.subject)
            hashes[i] = image_sha256(read_image_bytes(photo.path, gs.ctx.image_limits))
        except ValueError as exc:
            items[i] = _item(photo, "rejected", "invalid_subject", f"subject id {photo.subject[:50]!r}: {exc}")
        except FaceGateError as exc:
            items[i] = _item(photo, "rejected", exc.code, exc.message)
    stored = _stored_sources(gs, gallery_id, sorted({photos[i].subject for i in hashes}))
    for i, digest in hashes.items():
        if (photos[i].subject, digest) in stored:
            items[i] = _item(photos[i], "skipped", "duplicate", ALREADY_ENROLLED)
    return items


def _stored_sources(gs: GalleryService, gallery_id: int, subjects: list[str]) -> set[tuple[str, str]]:
    """(subject id, source sha256) of every template these subjects already have."""
    stored: set[tuple[str, str]] = set()
    with gs.ctx.sessions() as session:
        for start in range(0, len(subjects), 500):
            query = (
                select(Subject.external_id, FaceTemplate.source_sha256)
                .join(FaceTemplate, FaceTemplate.subject_id == Subject.id)
                .where(Subject.gallery_id == gallery_id, Subject.external_id.in_(subjects[start : start + 500]))
            )
            stored.update((ext, sha) for ext, sha in session.execute(query).all())
    return stored


def _store_subject(
    gs: GalleryService, gallery: str, photos: Sequence[SourcePhoto], indices: list[int],
    results: dict[int, PhotoResult], plan: list[BulkItem | None], principal: Principal,
) -> int:
    """Enroll one subject's analysed photos in one call; returns 1 when it created the subject."""
    readable = []
    for i in indices:
        result = results[i]
        if result.ok:
            readable.append(i)
        else:
            plan[i] = _item(photos[i], "rejected", result.error_code, result.error)
    if not readable:
        return 0
    first = photos[readable[0]]
    # The hash of the bytes the faces came from (the plan's, unless the file changed meanwhile).
    probes = [Probe(photos[i].photo, results[i].faces, results[i].height, results[i].width,
                    results[i].source_sha256) for i in readable]
    try:
        report = gs.enroll(gallery, first.subject, probes, display_name=first.display_name, create_subject=True,
                           principal=principal)
    except FaceGateError as exc:
        for i in readable:
            plan[i] = _item(photos[i], "rejected", exc.code, exc.message)
        return 0
    for i, enrolled in zip(readable, report.items):
        reason = ALREADY_ENROLLED if enrolled.code == "duplicate" else enrolled.reason
        plan[i] = BulkItem(subject=photos[i].subject, photo=photos[i].photo, status=enrolled.status,
                                 code=enrolled.code, reason=reason, template_id=enrolled.template_id,
                                 quality=enrolled.quality)
    return int(report.created_subject)


def _item(photo: SourcePhoto, status: EnrollStatus, code: str, reason: str) -> BulkItem:
    return BulkItem(subject=photo.subject, photo=photo.photo, status=status, code=code, reason=reason)


# -- the report --------------------------------------------------------------------------------
REPORT_SUFFIXES = (".csv", ".json")


def check_report_path(path: Path) -> None:
    """Refuse a report file the job could not write, before the job runs."""
    if path.suffix.lower() not in REPORT_SUFFIXES:
        raise InvalidRequestError(f"--report {path}: name a .csv or a .json file")
    if path.is_dir():
        raise InvalidRequestError(f"--report {path} is a folder")


def write_report(report: BulkReport, path: Path) -> None:
    """The per-photo report as CSV (``.csv``) or the whole report as JSON (``.json``)."""
    check_report_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        for item in report.items:
            writer.writerow({k: "" if v is None else v for k, v in item.model_dump().items()})
