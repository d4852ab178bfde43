"""What the database says about a gallery's templates: its version (one primary-key read), every
template at once, and what changed between two versions (``template_changes``, migration 0006).
The in-process search (:mod:`facegate.storage.vector_index`) keeps its caches current with these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate.storage.models import FaceTemplate, Gallery, TemplateChange
from facegate.storage.pg_copy import read_templates


@dataclass(frozen=True)
class GalleryState:
    """What one primary-key read of ``galleries`` says: enough to know if a cache is current."""

    id: int
    version: int
    count: int
    identity: str  # the gallery's creation time: tells a recreated gallery (same id) apart


def gallery_state(session: Session, gallery_id: int) -> GalleryState | None:
    row = session.execute(
        select(Gallery.template_version, Gallery.template_count, Gallery.created_at).where(Gallery.id == gallery_id)
    ).first()
    if row is None:
        return None
    return GalleryState(gallery_id, int(row[0]), int(row[1]), str(row[2]))


def load_gallery_matrix(session: Session, gallery_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, subject ids, vectors) of every template of the gallery, by id."""
    if session.get_bind().dialect.name == "postgresql":
        return read_templates(session, gallery_id)  # one binary stream, not rows of text to parse
    rows = session.execute(
        select(FaceTemplate.id, FaceTemplate.subject_id, FaceTemplate.vector)
        .where(FaceTemplate.gallery_id == gallery_id)
        .order_by(FaceTemplate.id)
    ).all()
    return _arrays(rows)


def _arrays(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    subjects = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.stack([np.asarray(r[2], dtype=np.float32) for r in rows])
    return ids, subjects, matrix


@dataclass
class Changes:
    """What happened to a gallery between two versions: the net templates gone and added."""

    version: int
    removed: np.ndarray
    ids: np.ndarray
    subjects: np.ndarray
    matrix: np.ndarray


def erased(changes: Changes, killed: int) -> bool:
    """Whether a change removed templates a saved index may hold: a template gone for good, or
    one re-added under its id whose old vector the index held (``killed`` rows). New templates
    alone are not: deleting the file for them cost the next search a second at 1M (the unlink of
    2 GB) and the next start a rebuild."""
    return killed > 0 or bool(np.setdiff1d(changes.removed, changes.ids).size)


def changes_since(session: Session, gallery_id: int, version: int, limit: int, upto: int) -> Changes | None:
    """The net change from ``version`` to (at least) ``upto``; None when the log cannot say
    (pruned: a version missing) or it is over ``limit`` templates (a reload is cheaper)."""
    rows = session.execute(
        select(TemplateChange.version, TemplateChange.template_id, TemplateChange.op)
        .where(TemplateChange.gallery_id == gallery_id, TemplateChange.version > version)
        .order_by(TemplateChange.version, TemplateChange.id)
        .limit(limit + 1)
    ).all()
    if len(rows) > limit:
        return None
    seen = sorted({int(r[0]) for r in rows})
    if (seen[-1] if seen else version) < upto or (seen and seen != list(range(version + 1, seen[-1] + 1))):
        return None  # a gap: changes pruned from the log
    last: dict[int, str] = {}
    for _, template_id, op in rows:
        last[int(template_id)] = op
    touched = np.array(sorted(last), dtype=np.int64)
    added = [t for t in touched if last[int(t)] == "add"]
    fetched: list = []
    for start in range(0, len(added), 500):
        fetched += session.execute(
            select(FaceTemplate.id, FaceTemplate.subject_id, FaceTemplate.vector)
            .where(FaceTemplate.gallery_id == gallery_id, FaceTemplate.id.in_([int(a) for a in added[start:start + 500]]))
            .order_by(FaceTemplate.id)
        ).all()
    ids, subjects, matrix = _arrays(fetched)
    # Every touched template is dropped first (a re-added id is replaced), then the live ones added.
    return Changes(seen[-1] if seen else version, touched, ids, subjects, matrix)
