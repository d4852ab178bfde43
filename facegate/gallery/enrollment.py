"""Enrollment: photos, frames or ready faces of one subject become templates, each accepted or
rejected on its own with a reason; ready-made templates can be bulk-imported."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facegate.engine import Face, FaceEngine, foreground_faces
from facegate.errors import (
    ConflictError,
    FaceGateError,
    InvalidRequestError,
    ManyFacesError,
    ModelMismatchError,
    NoFaceError,
    NotFoundError,
)
from facegate.gallery.context import GalleryContext, find_gallery, gallery_settings, template_count
from facegate.gallery.decisions import log_decision
from facegate.gallery.inputs import PhotoInput, ProbeInput, as_probe
from facegate.gallery.schemas import EnrollItem, EnrollReport, GallerySettings, check_subject_id
from facegate.gallery.thresholds import identify_threshold
from facegate.security import Principal
from facegate.storage.models import FaceCrop, FaceTemplate, Gallery, Subject, utcnow
from facegate.storage.pg_copy import copy_templates


def template_row(gallery_id: int, subject_id: int, face: Face, source_sha256: str) -> FaceTemplate:
    """The stored form of an enrolled face: its template, model tag, quality and source hash."""
    return FaceTemplate(
        gallery_id=gallery_id,
        subject_id=subject_id,
        model_id=face.template.model_id,
        model_sha256=face.template.model_sha256,
        vector=face.template.vector,
        quality=float(face.quality.score),
        source_sha256=source_sha256,
        box=[round(float(v), 1) for v in face.detection.box],
    )


@dataclass
class _Target:
    """The subject being enrolled and the rules it is enrolled under."""

    gallery: Gallery
    subject_id: int | None  # None: not created yet; created with its first accepted template
    engine: FaceEngine
    policy: GallerySettings
    face_index: int | None
    external_id: str = ""
    display_name: str | None = None
    attributes: dict | None = None
    created: bool = False


def enroll(
    ctx: GalleryContext,
    gallery: str,
    external_id: str,
    items: Iterable[ProbeInput],
    display_name: str | None,
    attributes: dict | None,
    create_subject: bool,
    face_index: int | None,
    principal: Principal,
) -> EnrollReport:
    """Enroll photos, frames or faces of one subject; each is accepted or rejected on its own.

    An item must hold exactly one face unless ``face_index`` picks one (0-based, in the
    detector's order); it must pass the quality check; the same source twice is skipped; a
    face that matches another subject is refused (or flagged, per gallery). Each accepted
    item is committed in its own transaction, so a crash loses at most the one in flight and
    never leaves half a template.
    """
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("enroll", g)
    engine = ctx.engine_for(g)
    subject_id = existing_subject(ctx, g, external_id, display_name, attributes)
    if subject_id is None and not create_subject:
        raise NotFoundError(f"subject {external_id!r} not found in gallery {g.name!r}")
    if subject_id is None:
        try:
            check_subject_id(external_id)
        except ValueError as exc:
            raise InvalidRequestError(f"cannot create subject {external_id[:50]!r}: {exc}") from None
    # A new subject is created in the transaction of its first accepted template: a subject
    # none of whose photos passes, or a request killed before one did, leaves nothing behind.
    target = _Target(g, subject_id, engine, gallery_settings(g), face_index, external_id, display_name, attributes)
    results = [enroll_one(ctx, target, item) for item in items]
    report = EnrollReport(
        subject=external_id,
        created_subject=target.created,
        accepted=sum(i.status == "accepted" for i in results),
        rejected=sum(i.status == "rejected" for i in results),
        skipped=sum(i.status == "skipped" for i in results),
        items=results,
    )
    log_decision(
        ctx, g.id, "enroll", "accepted" if report.accepted else "rejected", external_id,
        details={"accepted": report.accepted, "rejected": report.rejected, "skipped": report.skipped},
    )
    return report


def existing_subject(
    ctx: GalleryContext, g: Gallery, external_id: str, display_name: str | None, attributes: dict | None
) -> int | None:
    """The subject's id, its name and attributes updated when given; None when it does not exist."""
    with ctx.sessions.begin() as session:
        subject = session.scalar(select(Subject).where(Subject.gallery_id == g.id, Subject.external_id == external_id))
        if subject is None:
            return None
        if display_name is not None:
            subject.display_name = display_name
        if attributes is not None:
            subject.attributes = attributes
        return int(subject.id)


def _rejected(name: str, reason: str, code: str, **extra: object) -> EnrollItem:
    return EnrollItem(image=name, status="rejected", reason=reason, code=code, **extra)


def enroll_one(ctx: GalleryContext, target: _Target, item: ProbeInput) -> EnrollItem:
    """One photo, frame or probe through every enrollment rule, stored when it passes them all."""
    name = item.name
    try:
        source = item.to_frame(ctx.image_limits) if isinstance(item, PhotoInput) else item
    except FaceGateError as exc:
        return _rejected(name, exc.message, exc.code)
    if target.subject_id is None:
        # Created meanwhile by a concurrent request for the same subject: enroll into it (its
        # templates are this subject's own, not "another subject" to cross-match against).
        target.subject_id = existing_subject(ctx, target.gallery, target.external_id, None, None)
    refusal = _already_enrolled(ctx, target, name, source.source_sha256)
    if refusal is not None:
        return refusal
    chosen = _choose_face(as_probe(source, target.engine, ctx.image_limits).faces, target.face_index, name)
    if isinstance(chosen, EnrollItem):
        return chosen
    face, background = chosen
    quality, policy = face.quality, target.policy
    if not quality.acceptable or quality.score < policy.min_quality:
        reasons = quality.reasons or [f"quality {quality.score:.2f} under the gallery minimum {policy.min_quality}"]
        return _rejected(name, "; ".join(reasons), "poor_quality", quality=quality.score)
    if target.subject_id is None:
        # The analysis is the slow part: a concurrent request may have created this very
        # subject meanwhile. Its templates are then this subject's own, not another's.
        target.subject_id = existing_subject(ctx, target.gallery, target.external_id, None, None)
        if target.subject_id is not None and (refusal := _already_enrolled(ctx, target, name, source.source_sha256)):
            return refusal
    flagged = cross_match(ctx, target.gallery, target.external_id, face)
    if flagged and policy.reject_cross_matches:
        return _rejected(
            name, f"this face matches another enrolled subject ({flagged[0]}, score {flagged[1]:.3f})",
            "matches_other_subject", matches_subject=flagged[0], match_score=flagged[1], quality=quality.score,
        )
    template_id = _store(ctx, target, face, source.source_sha256)
    if template_id is None:
        return EnrollItem(image=name, status="skipped", reason="this photo is already enrolled", code="duplicate")
    notes = (f"flagged: matches {flagged[0]}" if flagged else "",
             f"{background} smaller background face(s) ignored" if background else "")
    return EnrollItem(
        image=name, status="accepted", template_id=template_id, quality=quality.score,
        matches_subject=flagged[0] if flagged else None, match_score=flagged[1] if flagged else None,
        reason="; ".join(part for part in notes if part),
    )


def _already_enrolled(ctx: GalleryContext, target: _Target, name: str, source_hash: str) -> EnrollItem | None:
    """A skip for a source already enrolled, a refusal for a subject at its template limit."""
    with ctx.sessions() as session:
        duplicate = session.scalar(
            select(FaceTemplate.id).where(
                FaceTemplate.subject_id == target.subject_id, FaceTemplate.source_sha256 == source_hash
            )
        )
        count = int(
            session.scalar(select(func.count(FaceTemplate.id)).where(FaceTemplate.subject_id == target.subject_id)) or 0
        )
    if duplicate is not None:
        return EnrollItem(
            image=name, status="skipped", reason="this photo is already enrolled", code="duplicate", template_id=duplicate
        )
    limit = target.policy.max_templates_per_subject
    if count >= limit:
        return _rejected(name, f"subject already has {count} templates (gallery limit {limit})", "too_many_templates")
    return None


def _choose_face(faces: list[Face], face_index: int | None, name: str) -> tuple[Face, int] | EnrollItem:
    """The face to enroll and how many background faces were ignored, or the refusal."""
    if not faces:
        return _rejected(name, "no face found; use a photo where the face is clearly visible", NoFaceError.code)
    if face_index is not None:
        if not 0 <= face_index < len(faces):
            return _rejected(name, f"face_index {face_index} is out of range: {len(faces)} face(s) found", "bad_face_index")
        return faces[face_index], 0
    foreground, background = foreground_faces(faces)
    if len(foreground) > 1:
        return _rejected(
            name, f"{len(foreground)} faces found; use a photo of one person or pass face_index", ManyFacesError.code
        )
    return foreground[0], background


def cross_match(ctx: GalleryContext, g: Gallery, external_id: str, face: Face) -> tuple[str, float] | None:
    """Another subject this face matches over the gallery's identify threshold: (id, score).
    Subjects are told apart by their id, not their row: a row created a moment ago by a
    concurrent request for this same subject is not "another subject"."""
    with ctx.sessions() as session:
        total = template_count(session, g.id)
        hits = ctx.search.search(session, g.id, g.model_id, face.template.vector, k=5)[0]
        if not hits:
            return None
        names = dict(session.execute(
            select(Subject.id, Subject.external_id).where(Subject.id.in_({h.subject_id for h in hits}))
        ).all())
        others = [h for h in hits if names.get(h.subject_id, "?") != external_id]
        if not others or others[0].score < identify_threshold(ctx, g, total).threshold:
            return None
        return (names.get(others[0].subject_id, "?"), others[0].score)


def _store(ctx: GalleryContext, target: _Target, face: Face, source_hash: str) -> int | None:
    """Commit the template (and its crop when the gallery keeps crops), creating the subject
    in the same transaction when it does not exist yet; None for a duplicate committed by a
    concurrent request."""
    for _attempt in range(3):
        try:
            return _store_once(ctx, target, face, source_hash)
        except IntegrityError:
            if target.subject_id is not None:
                return None
            # The subject was created by a concurrent request: enroll into it.
            target.subject_id = existing_subject(ctx, target.gallery, target.external_id, None, None)
    raise ConflictError(f"could not create subject {target.external_id!r}; retry")


def _store_once(ctx: GalleryContext, target: _Target, face: Face, source_hash: str) -> int:
    with ctx.sessions.begin() as session:
        subject_id, created = target.subject_id, False
        if subject_id is None:
            subject = Subject(gallery_id=target.gallery.id, external_id=target.external_id,
                              display_name=target.display_name or "", attributes=target.attributes or {})
            session.add(subject)
            session.flush()
            subject_id, created = int(subject.id), True
        template = template_row(target.gallery.id, subject_id, face, source_hash)
        session.add(template)
        session.flush()
        if target.policy.store_crops:
            bgr = cv2.cvtColor(face.aligned, cv2.COLOR_RGB2BGR)
            ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
            if ok:
                session.add(FaceCrop(template_id=template.id, jpeg=jpeg.tobytes()))
        template_id = int(template.id)
    # Committed: only now is the new subject the target's.
    if created:
        target.subject_id, target.created = subject_id, True
    return template_id


def import_templates(
    ctx: GalleryContext, gallery: str, rows: Sequence[tuple[str, str, np.ndarray]], source: str, principal: Principal
) -> int:
    """Bulk-load ready-made templates ``(external_id, display_name, vector)`` in one
    transaction: for migrating from another system and for benchmarks with large
    galleries. Vectors must come from the gallery's model; they are L2-normalised here."""
    with ctx.sessions.begin() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("admin", g)
        dimension = ctx.engines.get(g.model_id, g.detector).recognizer.dimension
        subject_ids = _ensure_subjects(session, g.id, rows)
        payload = []
        for i, (ext, _, vector) in enumerate(rows):
            v = np.asarray(vector, dtype=np.float32).ravel()
            if v.shape[0] != dimension:
                raise ModelMismatchError(f"row {i}: a {v.shape[0]}-d vector cannot join a {g.model_id} gallery")
            v = v / max(float(np.linalg.norm(v)), 1e-12)
            payload.append(
                {"gallery_id": g.id, "subject_id": subject_ids[ext], "model_id": g.model_id,
                 "model_sha256": g.model_sha256, "vector": v, "quality": 0.0,
                 "source_sha256": hashlib.sha256(f"{source}:{i}:{v[:4].tobytes().hex()}".encode()).hexdigest(),
                 "box": []}
            )
        if session.get_bind().dialect.name == "postgresql":
            copy_templates(session, payload)  # binary COPY: about 10x faster than inserts there
        else:
            for start in range(0, len(payload), 5000):
                session.execute(insert(FaceTemplate), payload[start : start + 5000])
    return len(rows)


# Ids a lookup sends at once (SQLite allows 32,766 bound values in one statement).
_LOOKUP_BATCH = 5000


def _ensure_subjects(session: Session, gallery_id: int, rows: Sequence[tuple[str, str, np.ndarray]]) -> dict[str, int]:
    """external id -> subject id for every row, inserting the subjects not there yet.

    Only this batch's ids are looked up (a batch at a time): reading the whole gallery's subjects
    for every batch made an import in batches quadratic (1M templates in 20k batches read 51M rows)."""
    names = {ext: name for ext, name, _ in rows}

    def lookup(wanted: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(wanted), _LOOKUP_BATCH):
            part = wanted[start : start + _LOOKUP_BATCH]
            query = select(Subject.external_id, Subject.id).where(
                Subject.gallery_id == gallery_id, Subject.external_id.in_(part)
            )
            found.update({ext: sid for ext, sid in session.execute(query).all()})
        return found

    existing = lookup(sorted(names))
    new_ids = sorted(ext for ext in names if ext not in existing)
    if new_ids:
        now = utcnow()
        session.execute(
            insert(Subject),
            [{"gallery_id": gallery_id, "external_id": ext, "display_name": names[ext], "attributes": {},
              "created_at": now, "updated_at": now} for ext in new_ids],
        )
        existing.update(lookup(new_ids))
    return existing
