"""The catalog: galleries (an organisation's people bound to one model), their subjects and
the faces enrolled for each. Erasing a subject erases its templates, crops and index entries."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from facegate.errors import ConflictError, InvalidRequestError, NotFoundError, PermissionDeniedError
from facegate.gallery import erasure
from facegate.gallery.context import (
    GalleryContext,
    find_gallery,
    find_subject,
    gallery_settings,
    template_count,
)
from facegate.gallery.paging import clamp_limit, oldest_first, page_of
from facegate.gallery.schemas import (
    FaceOut,
    GalleryOut,
    GallerySettings,
    Page,
    SubjectIn,
    SubjectOut,
    SubjectUpdate,
)
from facegate.gallery.thresholds import calibration_shown
from facegate.security import Principal, authorize, caller
from facegate.security.outbound import check_outbound_url
from facegate.storage.models import FaceCrop, FaceTemplate, Gallery, Subject

# -- galleries ----------------------------------------------------------------------------


def gallery_out(ctx: GalleryContext, session: Session, gallery: Gallery) -> GalleryOut:
    subjects = session.scalar(select(func.count(Subject.id)).where(Subject.gallery_id == gallery.id)) or 0
    return GalleryOut(
        id=gallery.id,
        name=gallery.name,
        model_id=gallery.model_id,
        model_sha256=gallery.model_sha256,
        detector=gallery.detector,
        # The webhook secret is write-only: shown as set or not, never echoed.
        settings=gallery_settings(gallery).model_copy(
            update={"alert_webhook_secret": "***" if (gallery.settings or {}).get("alert_webhook_secret") else ""}
        ),
        created_at=gallery.created_at,
        subjects=int(subjects),
        templates=template_count(session, gallery.id),
        active_calibration=calibration_shown(ctx, gallery),
    )


def create_gallery(
    ctx: GalleryContext, name: str, model: str, detector: str, settings: GallerySettings | None, principal: Principal
) -> GalleryOut:
    authorize(principal, "admin")
    if principal.gallery_id is not None:
        raise PermissionDeniedError("a gallery-bound key cannot create galleries")
    engine = ctx.named_engine(model, detector)
    with ctx.sessions.begin() as session:
        if session.scalar(select(Gallery).where(Gallery.name == name)) is not None:
            raise ConflictError(f"gallery {name!r} already exists")
        _check_urls(ctx, settings or GallerySettings())
        gallery = Gallery(
            name=name,
            model_id=engine.model_id,
            model_sha256=engine.model_sha256,
            detector=detector,
            settings=(settings or GallerySettings()).model_dump(),
        )
        session.add(gallery)
        session.flush()
        return gallery_out(ctx, session, gallery)


def _check_urls(ctx: GalleryContext, settings: GallerySettings) -> None:
    """The webhook URL is one the server may send to (see facegate.security.outbound)."""
    if settings.alert_webhook_url:
        try:
            check_outbound_url(settings.alert_webhook_url, ctx.settings.outbound_allowed_hosts.split(","))
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"alert_webhook_url: {exc.message}") from None


def get_gallery(ctx: GalleryContext, name: str, principal: Principal) -> GalleryOut:
    with ctx.sessions() as session:
        return gallery_out(ctx, session, find_gallery(session, name, principal))


def list_galleries(ctx: GalleryContext, cursor: str | None, limit: int, principal: Principal) -> Page:
    limit = clamp_limit(limit)
    with ctx.sessions() as session:
        query = select(Gallery)
        if caller(principal).gallery_id is not None:  # a gallery-bound key sees its own gallery only
            query = query.where(Gallery.id == principal.gallery_id)
        rows = oldest_first(session, query, Gallery.id, cursor, limit)
        return page_of(rows, limit, [gallery_out(ctx, session, g) for g in rows[:limit]])


def update_gallery_settings(ctx: GalleryContext, name: str, changes: dict[str, Any], principal: Principal) -> GalleryOut:
    authorize(principal, "admin")
    with ctx.sessions.begin() as session:
        gallery = find_gallery(session, name, principal)
        if changes.get("alert_webhook_secret") == "***":  # the masked value sent back unchanged
            changes = {k: v for k, v in changes.items() if k != "alert_webhook_secret"}
        merged = gallery_settings(gallery).model_dump() | changes
        try:
            checked = GallerySettings(**merged)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise InvalidRequestError(f"invalid gallery settings: {problems}") from None
        if "alert_webhook_url" in changes:
            _check_urls(ctx, checked)
        gallery.settings = checked.model_dump()
        return gallery_out(ctx, session, gallery)


def delete_gallery(ctx: GalleryContext, name: str, principal: Principal) -> None:
    authorize(principal, "admin")
    with ctx.sessions.begin() as session:
        gallery = find_gallery(session, name, principal)
        gallery_id = gallery.id
        session.delete(gallery)
    ctx.search.forget(gallery_id)  # its index, in memory and on disk (it holds the templates)
    erasure.flush_freed_bytes(ctx.db)


# -- subjects -----------------------------------------------------------------------------


def subject_out(session: Session, subject: Subject) -> SubjectOut:
    count = session.scalar(select(func.count(FaceTemplate.id)).where(FaceTemplate.subject_id == subject.id)) or 0
    return SubjectOut(
        external_id=subject.external_id,
        display_name=subject.display_name,
        attributes=subject.attributes or {},
        templates=int(count),
        created_at=subject.created_at,
        updated_at=subject.updated_at,
    )


def create_subject(ctx: GalleryContext, gallery: str, data: SubjectIn, principal: Principal) -> SubjectOut:
    with ctx.sessions.begin() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("enroll", g)
        exists = session.scalar(
            select(Subject.id).where(Subject.gallery_id == g.id, Subject.external_id == data.external_id)
        )
        if exists is not None:
            raise ConflictError(f"subject {data.external_id!r} already exists in gallery {gallery!r}")
        subject = Subject(
            gallery_id=g.id, external_id=data.external_id, display_name=data.display_name, attributes=data.attributes
        )
        session.add(subject)
        session.flush()
        return subject_out(session, subject)


def get_subject(ctx: GalleryContext, gallery: str, external_id: str, principal: Principal) -> SubjectOut:
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("recognize" if "recognize" in principal.scopes else "enroll", g)
        return subject_out(session, find_subject(session, g, external_id))


def list_subjects(ctx: GalleryContext, gallery: str, cursor: str | None, limit: int, principal: Principal) -> Page:
    limit = clamp_limit(limit)
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("enroll", g)
        rows = oldest_first(session, select(Subject).where(Subject.gallery_id == g.id), Subject.id, cursor, limit)
        return page_of(rows, limit, [subject_out(session, s) for s in rows[:limit]])


def update_subject(
    ctx: GalleryContext, gallery: str, external_id: str, changes: SubjectUpdate, principal: Principal
) -> SubjectOut:
    with ctx.sessions.begin() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("enroll", g)
        subject = find_subject(session, g, external_id)
        if changes.display_name is not None:
            subject.display_name = changes.display_name
        if changes.attributes is not None:
            subject.attributes = changes.attributes
        session.flush()
        return subject_out(session, subject)


def delete_subject(ctx: GalleryContext, gallery: str, external_id: str, principal: Principal) -> int:
    """Erase a subject with its templates, crops and index entries; returns templates erased."""
    with ctx.sessions.begin() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("enroll", g)
        subject = find_subject(session, g, external_id)
        template_ids = list(session.scalars(select(FaceTemplate.id).where(FaceTemplate.subject_id == subject.id)))
        if template_ids:
            session.execute(delete(FaceCrop).where(FaceCrop.template_id.in_(template_ids)))
            session.execute(delete(FaceTemplate).where(FaceTemplate.id.in_(template_ids)))
        session.delete(subject)  # its account goes with it (ON DELETE CASCADE)
        erasure.erase_traces(session, g.id, external_id)
        erasure.erase_exam_rosters(session, g.id, external_id)
        gallery_id = g.id
    ctx.search.drop_saved(gallery_id)  # the saved index holds its templates
    erasure.flush_freed_bytes(ctx.db)
    return len(template_ids)


# -- faces --------------------------------------------------------------------------------


def list_faces(
    ctx: GalleryContext, gallery: str, external_id: str, cursor: str | None, limit: int, principal: Principal
) -> Page:
    limit = clamp_limit(limit)
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("enroll", g)
        subject = find_subject(session, g, external_id)
        query = select(FaceTemplate).where(FaceTemplate.subject_id == subject.id)
        rows = oldest_first(session, query, FaceTemplate.id, cursor, limit)
        with_crop = set(
            session.scalars(select(FaceCrop.template_id).where(FaceCrop.template_id.in_([r.id for r in rows])))
        )
        items = [
            FaceOut(
                id=t.id,
                subject_external_id=external_id,
                model_id=t.model_id,
                quality=t.quality,
                source_sha256=t.source_sha256,
                box=[float(v) for v in t.box],
                has_crop=t.id in with_crop,
                created_at=t.created_at,
            )
            for t in rows[:limit]
        ]
        return page_of(rows, limit, items)


def delete_face(ctx: GalleryContext, gallery: str, external_id: str, face_id: int, principal: Principal) -> None:
    with ctx.sessions.begin() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("enroll", g)
        subject = find_subject(session, g, external_id)
        template = session.get(FaceTemplate, face_id)
        if template is None or template.subject_id != subject.id:
            raise NotFoundError(f"face {face_id} not found for subject {external_id!r}")
        session.delete(template)
        gallery_id = g.id
    ctx.search.drop_saved(gallery_id)  # the saved index holds the template
