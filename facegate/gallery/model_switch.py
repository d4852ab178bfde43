"""The model switch: the explicit re-enrollment job that moves a gallery to another model.

Templates of one model cannot be converted into another's, so the job takes photos again,
embeds them with the new model while the gallery keeps serving on the old one, and only then,
in one transaction, replaces every template and rebinds the gallery.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from facegate.engine import Face, FaceEngine
from facegate.errors import ConflictError, FaceGateError, NotFoundError
from facegate.gallery.context import GalleryContext, find_gallery, gallery_settings
from facegate.gallery.decisions import log_decision
from facegate.gallery.enrollment import template_row
from facegate.gallery.inputs import PhotoInput
from facegate.gallery.schemas import GallerySettings
from facegate.security import Principal
from facegate.storage.models import FaceTemplate, Subject


def switch_model(
    ctx: GalleryContext,
    gallery: str,
    model: str,
    photos: dict[str, list[PhotoInput]],
    detector: str | None,
    allow_partial: bool,
    principal: Principal,
) -> dict[str, Any]:
    """Re-enroll every subject from ``{external_id: [photos]}`` with ``model`` and switch.

    Subjects with no accepted photo block the switch unless ``allow_partial`` (they are then
    left with no template and reported).
    """
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("admin", g)
        subjects = {ext: sid for ext, sid in session.execute(
            select(Subject.external_id, Subject.id).where(Subject.gallery_id == g.id)).all()}
    unknown = sorted(set(photos) - set(subjects))
    if unknown:
        raise NotFoundError(f"no such subjects in gallery {gallery!r}: {', '.join(unknown[:10])}")
    engine = ctx.named_engine(model, detector or g.detector)
    staged, report = _embed_all(ctx, engine, gallery_settings(g), photos, subjects)
    missing = sorted(ext for ext, sid in subjects.items() if sid not in staged)
    if missing and not allow_partial:
        raise ConflictError(
            f"{len(missing)} subject(s) would be left without a template ({', '.join(missing[:10])}); "
            "supply photos for them or pass allow_partial"
        )
    with ctx.sessions.begin() as session:
        g = find_gallery(session, gallery, principal)
        session.execute(delete(FaceTemplate).where(FaceTemplate.gallery_id == g.id))
        for subject_id, faces in staged.items():
            unique_sources = {source: face for face, source in faces}  # same photo twice: once
            for source, face in unique_sources.items():
                session.add(template_row(g.id, subject_id, face, source))
        previous = f"{g.model_id}@{g.model_sha256[:12]}"
        g.model_id, g.model_sha256, g.detector = engine.model_id, engine.model_sha256, detector or g.detector
        gallery_id = g.id
    ctx.search.drop_saved(gallery_id)  # every template of the old model is gone
    log_decision(ctx, gallery_id, "switch_model", "switched", None, details={
        "from": previous, "to": f"{engine.model_id}@{engine.model_sha256[:12]}", "without_template": missing})
    return {"gallery": gallery, "from": previous, "to": engine.model_id, "subjects_reenrolled": len(staged),
            "subjects_without_template": missing, "photos": report}


def _embed_all(
    ctx: GalleryContext, engine: FaceEngine, policy: GallerySettings, photos: dict[str, list[PhotoInput]],
    subjects: dict[str, int],
) -> tuple[dict[int, list[tuple[Face, str]]], dict[str, list[dict]]]:
    """Every photo embedded with the new model: (faces per subject id, a verdict per photo)."""
    staged: dict[int, list[tuple[Face, str]]] = {}
    report: dict[str, list[dict]] = {}
    for external_id, subject_photos in photos.items():
        for photo in subject_photos:
            verdicts = report.setdefault(external_id, [])
            try:
                frame = photo.to_frame(ctx.image_limits)
                face = engine.single_face(frame.image)
            except FaceGateError as exc:
                verdicts.append({"image": photo.name, "status": "rejected", "code": exc.code, "reason": exc.message})
                continue
            if not face.quality.acceptable or face.quality.score < policy.min_quality:
                verdicts.append({"image": photo.name, "status": "rejected", "code": "poor_quality",
                                 "reason": "; ".join(face.quality.reasons)})
                continue
            staged.setdefault(subjects[external_id], []).append((face, frame.source_sha256))
            verdicts.append({"image": photo.name, "status": "accepted"})
    return staged, report
