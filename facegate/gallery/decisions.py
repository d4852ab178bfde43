"""The decision log: every enrollment, verification, identification and model switch, with the
threshold, target rate and calibration it used, and the probe's template and image measures
(monitoring compares them between time windows and refreshes templates from them)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from facegate.engine import Face
from facegate.gallery.context import GalleryContext, find_gallery
from facegate.gallery.paging import clamp_limit, newest_first, page_of
from facegate.gallery.schemas import DecisionOut, Page, ThresholdInfo
from facegate.security import Principal
from facegate.storage.models import Decision


def log_decision(
    ctx: GalleryContext,
    gallery_id: int,
    kind: str,
    outcome: str,
    subject: str | None,
    score: float | None = None,
    threshold: ThresholdInfo | None = None,
    request_id: str = "",
    details: dict | None = None,
    face: Face | None = None,
) -> int:
    """Write one decision and tell the observers (metrics): every decision passes here."""
    quality = brightness = face_size = None
    if face is not None:
        quality = float(face.quality.score)
        brightness = float(face.quality.measures.get("brightness", np.nan))
        face_size = float(face.detection.box[3] - face.detection.box[1])
    with ctx.sessions.begin() as session:
        row = Decision(
            gallery_id=gallery_id,
            kind=kind,
            outcome=outcome,
            subject_external_id=subject,
            score=score,
            threshold=threshold.threshold if threshold else None,
            target_rate=threshold.target_rate if threshold else None,
            calibration=threshold.calibration if threshold else "",
            request_id=request_id,
            details=details or {},
            probe=face.template.vector if face is not None else None,
            quality=quality,
            brightness=brightness,
            face_size=face_size,
        )
        session.add(row)
        session.flush()
        decision_id = int(row.id)
    ctx.notify(kind, outcome, score, quality, details or {})
    return decision_id


def decision_out(d: Decision) -> DecisionOut:
    return DecisionOut(
        id=d.id,
        kind=d.kind,
        outcome=d.outcome,
        subject=d.subject_external_id,
        score=d.score,
        threshold=d.threshold,
        target_rate=d.target_rate,
        calibration=d.calibration,
        request_id=d.request_id,
        details=d.details or {},
        created_at=d.created_at,
    )


def list_decisions(
    ctx: GalleryContext, gallery: str, cursor: str | None, limit: int, kind: str | None, principal: Principal
) -> Page:
    limit = clamp_limit(limit)
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("admin", g)
        query = select(Decision).where(Decision.gallery_id == g.id)
        if kind:
            query = query.where(Decision.kind == kind)
        rows = newest_first(session, query, Decision.id, cursor, limit)
        return page_of(rows, limit, [decision_out(d) for d in rows[:limit]])
