"""Recognition: detect, verify 1:1 (with the optional 1:N cross-check) and identify 1:N, on a
photo, a decoded frame or faces already found (see :mod:`facegate.gallery.inputs`); every
verify and identify is logged with the threshold it used."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from facegate.engine import Face, main_face_index
from facegate.errors import ConflictError, ModelMismatchError, NoFaceError
from facegate.gallery.context import GalleryContext, find_gallery, find_subject, template_count
from facegate.gallery.decisions import log_decision
from facegate.gallery.inputs import Probe, ProbeInput, as_probe
from facegate.gallery.schemas import (
    Candidate,
    DetectedFace,
    IdentifiedFace,
    IdentifyResult,
    ThresholdInfo,
    VerifyResult,
)
from facegate.gallery.thresholds import identify_threshold, verify_threshold
from facegate.security import Principal, authorize
from facegate.storage.models import FaceTemplate, Gallery, Subject
from facegate.storage.vector_index import Hit


def face_out(face: Face) -> DetectedFace:
    d = face.detection.to_dict()
    return DetectedFace(box=d["box"], score=d["score"], landmarks=d["landmarks"], quality=face.quality.to_dict())


def detect(ctx: GalleryContext, item: ProbeInput, model: str, detector: str, principal: Principal) -> list[DetectedFace]:
    authorize(principal, "recognize")
    probe = as_probe(item, ctx.named_engine(model, detector), ctx.image_limits)
    return [face_out(f) for f in probe.faces]


def main_face(probe: Probe) -> Face:
    """The portrait's subject: large and near the centre of the picture."""
    return probe.faces[main_face_index([f.detection for f in probe.faces], probe.height, probe.width)]


def verify(
    ctx: GalleryContext,
    gallery: str,
    external_id: str,
    item: ProbeInput,
    far: float | None,
    request_id: str,
    crosscheck: bool,
    principal: Principal,
    extra_details: dict | None = None,
) -> VerifyResult:
    """1:1: is the main face of the picture this subject?

    With ``crosscheck`` the same probe is also searched 1:N: other subjects it matches
    better than the claimed one (over the same threshold) come back in ``better_matches``,
    the sign of someone presenting another person's id.
    """
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("recognize", g)
        subject = find_subject(session, g, external_id)
        rows = list(session.scalars(select(FaceTemplate).where(FaceTemplate.subject_id == subject.id)))
    if not rows:
        raise ConflictError(f"subject {external_id!r} has no enrolled face; enroll a photo first")
    probe = as_probe(item, ctx.engine_for(g), ctx.image_limits)
    if not probe.faces:
        log_decision(ctx, g.id, "verify", "no_face", external_id, request_id=request_id)
        raise NoFaceError("no face found in the photo; ask the person to face the camera")
    face = main_face(probe)
    if any(row.model_sha256 != face.template.model_sha256 for row in rows):
        raise ModelMismatchError("stored templates come from another model; re-enroll this subject")
    matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in rows])
    score = float((matrix @ face.template.vector).max())
    info = verify_threshold(ctx, g, len(rows), far)
    match = score >= info.threshold
    better = better_matches(ctx, g, subject.id, face, score, info.threshold) if crosscheck else []
    details = {
        "faces_in_image": len(probe.faces),
        "quality": round(face.quality.score, 3),
        **({"better_matches": [c.model_dump() for c in better]} if better else {}),
        **(extra_details or {}),
    }
    decision_id = log_decision(
        ctx, g.id, "verify", "match" if match else "no_match", external_id, score=score, threshold=info,
        request_id=request_id, details=details, face=face,
    )
    return VerifyResult(
        decision_id=decision_id, subject=external_id, match=match, score=score, threshold=info,
        face=face_out(face), faces_in_image=len(probe.faces), templates_compared=len(rows), better_matches=better,
    )


def better_matches(
    ctx: GalleryContext, g: Gallery, claimed_subject_id: int, face: Face, claimed_score: float, threshold: float
) -> list[Candidate]:
    """Other subjects the probe matches over ``threshold`` and better than the claimed one."""
    with ctx.sessions() as session:
        hits = ctx.search.search(session, g.id, g.model_id, face.template.vector[None, :], k=10)[0]
        best: dict[int, float] = {}
        for h in hits:
            if h.subject_id != claimed_subject_id and h.score >= threshold and h.score > claimed_score:
                best[h.subject_id] = max(best.get(h.subject_id, -2.0), h.score)
        if not best:
            return []
        names = {s.id: s for s in session.scalars(select(Subject).where(Subject.id.in_(best)))}
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    return [
        Candidate(subject=names[i].external_id, display_name=names[i].display_name, score=sc)
        for i, sc in ranked if i in names
    ]


def identify(
    ctx: GalleryContext,
    gallery: str,
    item: ProbeInput,
    top_k: int,
    fpir: float | None,
    request_id: str,
    max_faces: int,
    exact: bool | None,
    principal: Principal,
    extra_details: dict | None = None,
) -> IdentifyResult:
    """1:N for every face in the picture: a subject when the best score passes the
    gallery-size-aware threshold, otherwise ``unknown``."""
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("recognize", g)
    faces = as_probe(item, ctx.engine_for(g), ctx.image_limits, max_faces=max_faces).faces
    vectors = np.stack([f.template.vector for f in faces]) if faces else np.zeros((0, 1), np.float32)
    ranking = rank_vectors(ctx, g, vectors, top_k, fpir, exact)
    info, total = ranking.threshold, ranking.templates
    results = [_identified(face, row, info.threshold) for face, row in zip(faces, ranking.candidates)]
    outcome = "no_face" if not faces else ("match" if any(r.decision == "match" for r in results) else "unknown")
    decision_id = log_decision(
        ctx, g.id, "identify", outcome, next((r.subject for r in results if r.subject), None),
        score=results[0].score if results else None, threshold=info, request_id=request_id,
        details={
            "faces": [{"decision": r.decision, "subject": r.subject, "score": r.score} for r in results],
            "gallery_templates": total,
            **(extra_details or {}),
        },
        face=faces[0] if faces else None,
    )
    return IdentifyResult(decision_id=decision_id, faces=results, threshold=info, gallery_templates=total)


@dataclass
class Ranking:
    """Each query's best subjects (by their best template, best first), the identify threshold
    for this gallery size and the number of templates searched."""

    candidates: list[list[Candidate]]
    threshold: ThresholdInfo
    templates: int


def rank_vectors(
    ctx: GalleryContext, g: Gallery, vectors: np.ndarray, top_k: int, fpir: float | None, exact: bool | None = None
) -> Ranking:
    """The 1:N search behind identify, without a decision: a video track ranks its accumulated
    template many times and logs one decision when it is named."""
    with ctx.sessions() as session:
        total = template_count(session, g.id)
        info = identify_threshold(ctx, g, total, fpir)
        if not len(vectors):
            return Ranking([], info, total)
        # Ask for more templates than subjects wanted: a subject may own several.
        hits = ctx.search.search(session, g.id, g.model_id, vectors, k=max(top_k * 4, 10), exact=exact)
        subject_ids = {h.subject_id for row in hits for h in row}
        names: dict[int, tuple[str, str]] = {}
        if subject_ids:
            subjects = session.scalars(select(Subject).where(Subject.id.in_(subject_ids)))
            names = {s.id: (s.external_id, s.display_name) for s in subjects}
    return Ranking([_best_subjects(row, names, top_k) for row in hits], info, total)


def _best_subjects(row: list[Hit], names: dict[int, tuple[str, str]], top_k: int) -> list[Candidate]:
    best_per_subject: dict[int, float] = {}
    for h in row:
        if h.subject_id in names and h.score > best_per_subject.get(h.subject_id, -2.0):
            best_per_subject[h.subject_id] = h.score
    ranked = sorted(best_per_subject.items(), key=lambda kv: -kv[1])[:top_k]
    return [Candidate(subject=names[s][0], display_name=names[s][1], score=sc) for s, sc in ranked]


def _identified(face: Face, candidates: list[Candidate], threshold: float) -> IdentifiedFace:
    """One face's answer: a match when its best subject passes the threshold."""
    matched = bool(candidates) and candidates[0].score >= threshold
    return IdentifiedFace(
        face=face_out(face),
        decision="match" if matched else "unknown",
        subject=candidates[0].subject if matched else None,
        display_name=candidates[0].display_name if matched else None,
        score=candidates[0].score if candidates else None,
        candidates=candidates,
    )
