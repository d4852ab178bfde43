"""The automatic response to drift: recalibrate on recent verified data, refresh templates.

It runs when the drift report (:mod:`facegate.monitoring.drift`) marks any feature as drifted,
or when the reject rate of the recent window rose by more than ``reject_rate_rise`` over the
reference (or always, with ``force``). It is a dry run unless ``apply`` is given.

**Recalibration.** The probes of recent *verified* decisions (verify matches, and identify
matches with one face in the photo) are people whose identity the system confirmed. Each
probe scored against every template of the *other* subjects is an impostor pair from today's
cameras and today's population; :func:`facegate.modelops.registry.calibrate_scores` turns them
into a FAR -> threshold table (bootstrap over people) and
:func:`~facegate.modelops.registry.publish_calibration` registers it as a new version.
It is **not promoted** by default: a few thousand pairs from one site resolve FAR 1e-2 or
1e-3, not the 1e-4 a gallery usually verifies at, so the new version is registered for a
person to compare; ``promote`` moves the ``production`` alias to it, and even then only when
the sample resolves the gallery's verify FAR (at least 10 impostor pairs above the threshold).

**Template refresh.** A verified probe with quality >= ``refresh_min_quality`` and a score at
least ``refresh_score_margin`` over the threshold it passed becomes a new template of that
subject (``source_sha256 = "probe:<decision id>"``), newest first, at most
``max_refresh_per_subject`` such templates per subject: beyond that the oldest refresh
template is replaced. This keeps templates current as people age or cameras change, while
the quality gate and the margin keep doubtful matches (and dark, blurred shifted traffic)
out, and the cap bounds what one bad day can add.

Every applied action is one ``ops_actions`` row holding what undoing it needs (the template
ids it added, the full rows it replaced, the production version it replaced);
:func:`revert_action` undoes it.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select

from facegate.errors import ConflictError, NotFoundError
from facegate.gallery.context import find_gallery
from facegate.gallery.service import GalleryService
from facegate.monitoring.drift import DriftLimits, DriftReport, DriftWindows, gallery_drift
from facegate.security import Principal
from facegate.storage.models import Decision, FaceTemplate, Gallery, OpsAction, Subject, utcnow

REFRESH_PREFIX = "probe:"
KIND_RECALIBRATE = "recalibrate"
KIND_REFRESH = "refresh_templates"


class ResponsePolicy(BaseModel):
    """What the automatic response may do (see the module docstring for why these defaults)."""

    reject_rate_rise: float = Field(0.10, ge=0, le=1, description="Act when the reject rate rose by more than this.")
    force: bool = Field(False, description="Act even when nothing drifted.")
    recalibrate: bool = True
    promote: bool = Field(False, description="Move the production alias to the new calibration (if it resolves the gallery's FAR).")
    min_impostors: int = Field(1000, ge=10, description="Impostor pairs needed to recalibrate at all.")
    bootstrap: int = Field(200, ge=0, le=5000)
    refresh: bool = True
    refresh_min_quality: float = Field(0.7, ge=0, le=1)
    refresh_score_margin: float = Field(0.10, ge=0, le=1)
    max_refresh_per_subject: int = Field(3, ge=1, le=50)


class RefreshItem(BaseModel):
    subject: str
    decision_id: int
    score: float
    threshold: float
    quality: float
    template_id: int | None = None


class RefreshPlan(BaseModel):
    candidates: int = Field(0, description="Verified probes in the recent window with a stored template.")
    add: list[RefreshItem] = Field(default_factory=list)
    replace_template_ids: list[int] = Field(default_factory=list)
    skipped: dict[str, int] = Field(default_factory=dict, description="Probes left out, by reason.")


class RecalibrationPlan(BaseModel):
    probes: int = 0
    subjects: int = 0
    impostor_pairs: int = 0
    genuine_pairs: int = 0
    target_far: float | None = None
    threshold: float | None = None
    threshold_ci: list[float] | None = None
    current_threshold: float | None = Field(None, description="The calibration in use, at the same FAR.")
    genuine_accept_rate: float | None = Field(None, description="Share of the verified probes at or over the new threshold.")
    resolvable: bool = False
    promote: bool = False
    version: int | None = None
    skipped_reason: str = ""


class OpsActionOut(BaseModel):
    id: int
    gallery: str | None
    kind: str
    details: dict[str, Any]
    created_at: dt.datetime
    reverted_at: dt.datetime | None


class ResponseReport(BaseModel):
    gallery: str
    triggered: bool
    reasons: list[str]
    applied: bool
    drift: DriftReport
    recalibration: RecalibrationPlan | None = None
    refresh: RefreshPlan | None = None
    actions: list[OpsActionOut] = Field(default_factory=list)


# -- verified probes ------------------------------------------------------------------------
def _verified_probes(session, g: Gallery, first_id: int | None, last_id: int | None) -> list[Decision]:
    """Matched decisions between two ids with a stored probe template under the gallery's
    current model (decisions before the last model switch are left out)."""
    if first_id is None or last_id is None:
        return []
    switched = session.scalar(
        select(func.max(Decision.id)).where(Decision.gallery_id == g.id, Decision.kind == "switch_model")
    ) or 0
    rows = session.scalars(
        select(Decision).where(
            Decision.gallery_id == g.id, Decision.id >= max(first_id, switched + 1), Decision.id <= last_id,
            Decision.outcome == "match", Decision.kind.in_(("verify", "identify")), Decision.probe.is_not(None),
            Decision.subject_external_id.is_not(None),
        ).order_by(Decision.id)
    ).all()
    # An identify with several faces logs the first face's probe but may name another face's subject.
    return [d for d in rows if d.kind == "verify" or len((d.details or {}).get("faces", [])) == 1]


def _templates(session, gallery_id: int) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    rows = session.execute(
        select(FaceTemplate.vector, FaceTemplate.subject_id).where(FaceTemplate.gallery_id == gallery_id)
    ).all()
    names = dict(session.execute(select(Subject.id, Subject.external_id).where(Subject.gallery_id == gallery_id)).all())
    if not rows:
        return np.zeros((0, 1), np.float32), np.zeros(0, np.int64), names
    return np.stack([np.asarray(v, np.float32) for v, _ in rows]), np.array([s for _, s in rows]), names


# -- recalibration --------------------------------------------------------------------------
def plan_recalibration(service: GalleryService, g: Gallery, probes: list[Decision], policy: ResponsePolicy):
    """The impostor and genuine scores of the verified probes, and the calibration they give."""
    from facegate.modelops.registry import calibrate_scores

    plan = RecalibrationPlan(probes=len(probes))
    with service.ctx.sessions() as session:
        vectors, owners, names = _templates(session, g.id)
    by_name = {v: k for k, v in names.items()}
    dim = vectors.shape[1]
    usable = [d for d in probes if d.subject_external_id in by_name and np.asarray(d.probe).size == dim]
    plan.subjects = len({d.subject_external_id for d in usable})
    target = service.gallery_settings(g).verify_far
    if not usable or len(set(owners.tolist())) < 2:
        plan.skipped_reason = "no verified probes with a stored template, or fewer than two enrolled subjects"
        return plan, None
    impostors, probe_labels, template_labels, genuine = [], [], [], []
    for d in usable:
        own = by_name[d.subject_external_id or ""]  # usable probes name an enrolled subject
        scores = vectors @ np.asarray(d.probe, np.float32)
        other = owners != own
        impostors.append(scores[other])
        probe_labels.append(np.full(int(other.sum()), own))
        template_labels.append(owners[other])
        if (~other).any():
            genuine.append(float(scores[~other].max()))
    imp = np.concatenate(impostors).astype(np.float64)
    plan.impostor_pairs, plan.genuine_pairs = int(imp.size), len(genuine)
    if imp.size < policy.min_impostors:
        plan.skipped_reason = f"{imp.size} impostor pairs, need {policy.min_impostors} (policy.min_impostors)"
        return plan, None
    # The gallery's FAR when the sample resolves it (10 pairs above), else the smallest it does.
    resolved_far = 10.0 / imp.size
    plan.resolvable = target >= resolved_far
    plan.target_far = float(target if plan.resolvable else min(0.1, resolved_far))
    plan.current_threshold = service.calibration_for(g).threshold_at(plan.target_far)  # same FAR, for comparison
    first, last = usable[0].id, usable[-1].id
    result = calibrate_scores(
        imp, plan.target_far, g.model_id, g.model_sha256,
        source=(f"gallery {g.name}: {len(usable)} verified probes (decisions {first}-{last}) against "
                f"{len(vectors)} templates of other subjects, {imp.size} impostor pairs"),
        identities=(np.concatenate(probe_labels), np.concatenate(template_labels)),
        bootstrap=policy.bootstrap, name=f"recalibration-{g.name}",
    )
    plan.threshold = float(result.threshold)
    plan.threshold_ci = [float(x) for x in result.threshold_ci]
    plan.genuine_accept_rate = float(np.mean(np.array(genuine) >= result.threshold)) if genuine else None
    plan.promote = bool(policy.promote and plan.resolvable)
    return plan, result


def _production_version(model_id: str, settings) -> int | None:
    from facegate.modelops.registry import PRODUCTION_ALIAS, list_versions

    for v in list_versions(model_id, settings):
        if PRODUCTION_ALIAS in v.aliases:
            return v.version
    return None


# -- template refresh -----------------------------------------------------------------------
def plan_refresh(service: GalleryService, g: Gallery, probes: list[Decision], policy: ResponsePolicy) -> RefreshPlan:
    """Which verified probes become templates, and which old refresh templates they replace."""
    plan = RefreshPlan(candidates=len(probes))
    skipped: dict[str, int] = defaultdict(int)
    limit = service.gallery_settings(g).max_templates_per_subject
    with service.ctx.sessions() as session:
        names = dict(session.execute(select(Subject.external_id, Subject.id).where(Subject.gallery_id == g.id)).all())
        existing = session.execute(
            select(FaceTemplate.id, FaceTemplate.subject_id, FaceTemplate.source_sha256)
            .where(FaceTemplate.gallery_id == g.id).order_by(FaceTemplate.created_at, FaceTemplate.id)
        ).all()
    per_subject: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for template_id, subject_id, source in existing:
        per_subject[subject_id].append((template_id, source))
    # The newest probe already serving as a template, per subject: an older probe never replaces it.
    newest_used: dict[int, int] = {}
    for subject_id, rows in per_subject.items():
        used = [int(source[len(REFRESH_PREFIX):]) for _, source in rows
                if source.startswith(REFRESH_PREFIX) and source[len(REFRESH_PREFIX):].isdigit()]
        if used:
            newest_used[subject_id] = max(used)
    chosen: dict[int, list[Decision]] = defaultdict(list)
    for d in sorted(probes, key=lambda d: -d.id):  # newest first
        owner = names.get(d.subject_external_id or "")
        if owner is None:
            skipped["subject_gone"] += 1
        elif d.quality is None or d.quality < policy.refresh_min_quality:
            skipped["low_quality"] += 1
        elif d.score is None or d.threshold is None or d.score < d.threshold + policy.refresh_score_margin:
            skipped["small_margin"] += 1
        elif any(source == f"{REFRESH_PREFIX}{d.id}" for _, source in per_subject[owner]):
            skipped["already_added"] += 1
        elif d.id < newest_used.get(owner, -1):
            skipped["older_than_refresh"] += 1
        elif len(chosen[owner]) >= policy.max_refresh_per_subject:
            skipped["subject_cap"] += 1
        else:
            chosen[owner].append(d)
    for subject_id, decisions in chosen.items():
        current = per_subject[subject_id]
        refresh = [tid for tid, source in current if source.startswith(REFRESH_PREFIX)]  # oldest first
        others = len(current) - len(refresh)
        room = min(policy.max_refresh_per_subject, limit - others)
        if room <= 0:
            skipped["template_limit"] += len(decisions)
            continue
        decisions = decisions[:room]
        over = len(refresh) + len(decisions) - room
        plan.replace_template_ids.extend(refresh[: max(over, 0)])
        for d in decisions:  # verified matches: each has a score, a threshold and a quality
            plan.add.append(RefreshItem(subject=d.subject_external_id, decision_id=d.id, score=float(d.score or 0.0),
                                        threshold=float(d.threshold or 0.0), quality=float(d.quality or 0.0)))
    plan.skipped = dict(skipped)
    return plan


def _vector_b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def _vector_from_b64(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").copy()


def apply_refresh(service: GalleryService, g: Gallery, plan: RefreshPlan, trigger: dict) -> OpsAction | None:
    """Add the planned templates and remove the ones they replace, in one transaction, and
    record it (with the replaced rows in full, so a revert can put them back)."""
    if not plan.add:
        return None
    with service.ctx.sessions.begin() as session:
        replaced = []
        for t in session.scalars(select(FaceTemplate).where(FaceTemplate.id.in_(plan.replace_template_ids))):
            replaced.append({
                "template_id": t.id, "subject_id": t.subject_id, "model_id": t.model_id,
                "model_sha256": t.model_sha256, "vector": _vector_b64(t.vector), "quality": t.quality,
                "source_sha256": t.source_sha256, "box": list(t.box or []),
                "created_at": t.created_at.isoformat() if t.created_at else None,
            })
        if plan.replace_template_ids:
            session.execute(delete(FaceTemplate).where(FaceTemplate.id.in_(plan.replace_template_ids)))
        names = dict(session.execute(select(Subject.external_id, Subject.id).where(Subject.gallery_id == g.id)).all())
        decisions = {d.id: d for d in session.scalars(select(Decision).where(Decision.id.in_([i.decision_id for i in plan.add])))}
        for item in plan.add:
            d = decisions[item.decision_id]
            row = FaceTemplate(
                gallery_id=g.id, subject_id=names[item.subject], model_id=g.model_id, model_sha256=g.model_sha256,
                vector=np.asarray(d.probe, np.float32), quality=float(d.quality or 0.0),
                source_sha256=f"{REFRESH_PREFIX}{d.id}", box=[],
            )
            session.add(row)
            session.flush()
            item.template_id = row.id
        action = OpsAction(
            gallery_id=g.id, kind=KIND_REFRESH,
            details={"gallery_id": g.id, "added": [i.model_dump() for i in plan.add], "replaced": replaced,
                     "trigger": trigger},
        )
        session.add(action)
        session.flush()
    return action


def apply_recalibration(
    service: GalleryService, g: Gallery, plan: RecalibrationPlan, result, trigger: dict
) -> OpsAction:
    """Register the calibration (promoting it if the plan says so) and record the action."""
    from facegate.modelops.registry import publish_calibration

    previous = _production_version(g.model_id, service.settings)
    plan.version = publish_calibration(
        result.calibration, run_id=None, promote=plan.promote, settings=service.settings,
        tags={"trigger": "facegate monitor respond", "gallery": g.name, "genuine_pairs": plan.genuine_pairs,
              "genuine_accept_rate": plan.genuine_accept_rate},
    )
    with service.ctx.sessions.begin() as session:
        action = OpsAction(
            gallery_id=g.id, kind=KIND_RECALIBRATE,
            details={"model_id": g.model_id, "version": plan.version, "promoted": plan.promote,
                     "previous_production": previous, "plan": plan.model_dump(), "trigger": trigger},
        )
        session.add(action)
        session.flush()
    return action


# -- entry points ---------------------------------------------------------------------------
def _action_out(action: OpsAction, gallery: str | None) -> OpsActionOut:
    return OpsActionOut(id=action.id, gallery=gallery, kind=action.kind, details=action.details or {},
                        created_at=action.created_at, reverted_at=action.reverted_at)


def triggers(report: DriftReport, policy: ResponsePolicy) -> list[str]:
    """Why the response should act: drifted features, a reject-rate rise, or ``force``."""
    reasons = [f"{f.feature}: {'; '.join(f.reasons)}" for f in report.features if f.drifted]
    before, after = report.reference_reject_rate, report.recent_reject_rate
    if before is not None and after is not None and after - before > policy.reject_rate_rise:
        reasons.append(f"reject rate rose from {before:.1%} to {after:.1%} (limit +{policy.reject_rate_rise:.0%})")
    if policy.force and not reasons:
        reasons.append("forced")
    return reasons


def respond(
    service: GalleryService, gallery: str, windows: DriftWindows | None = None, policy: ResponsePolicy | None = None,
    apply: bool = False, limits: DriftLimits | None = None, *, principal: Principal,
) -> ResponseReport:
    """Check drift and plan (with ``apply``: carry out and record) the response."""
    windows = windows or DriftWindows()
    policy = policy or ResponsePolicy()
    report = gallery_drift(service, gallery, windows, limits, principal=principal)
    reasons = triggers(report, policy)
    out = ResponseReport(gallery=gallery, triggered=bool(reasons), reasons=reasons, applied=False, drift=report)
    if not reasons:
        return out
    with service.ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        probes = _verified_probes(session, g, report.recent.first_decision_id, report.recent.last_decision_id)
    trigger = {"reasons": reasons, "recent": report.recent.model_dump(mode="json"),
               "reference": report.reference.model_dump(mode="json")}
    result = None
    if policy.recalibrate:
        out.recalibration, result = plan_recalibration(service, g, probes, policy)
    if policy.refresh:
        out.refresh = plan_refresh(service, g, probes, policy)
    if apply:
        out.applied = True
        if result is not None and out.recalibration is not None:
            out.actions.append(_action_out(apply_recalibration(service, g, out.recalibration, result, trigger), gallery))
        if out.refresh is not None:
            action = apply_refresh(service, g, out.refresh, trigger)
            if action is not None:
                out.actions.append(_action_out(action, gallery))
    return out


def list_actions(service: GalleryService, gallery: str, *, principal: Principal) -> list[OpsActionOut]:
    """The gallery's monitoring actions, newest first."""
    with service.ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("admin", g)
        rows = session.scalars(select(OpsAction).where(OpsAction.gallery_id == g.id).order_by(OpsAction.id.desc())).all()
        return [_action_out(a, gallery) for a in rows]


def revert_action(service: GalleryService, action_id: int, *, principal: Principal) -> dict:
    """Undo one action. Refresh: delete the templates it added (those still present) and put
    back the ones it replaced. Recalibration: if it promoted its version, move the production
    alias back to the version it replaced (refused when production has moved on since)."""
    principal.require("admin")
    with service.ctx.sessions() as session:
        action = session.get(OpsAction, action_id)
        gallery = session.get(Gallery, action.gallery_id) if action is not None and action.gallery_id else None
        if action is None or (principal.gallery_id is not None and (gallery is None or gallery.id != principal.gallery_id)):
            raise NotFoundError(f"monitoring action {action_id} not found")
        if action.reverted_at is not None:
            raise ConflictError(f"monitoring action {action_id} was already reverted at {action.reverted_at:%Y-%m-%d %H:%M}")
        kind, details = action.kind, dict(action.details or {})
    if kind == KIND_REFRESH:
        outcome = _revert_refresh(service, action_id, details)
    elif kind == KIND_RECALIBRATE:
        outcome = _revert_recalibration(service, details)
    else:
        raise ConflictError(f"monitoring action {action_id} ({kind}) cannot be reverted")
    with service.ctx.sessions.begin() as session:
        row = session.get(OpsAction, action_id)
        if row is None:  # deleted with its gallery while the revert ran
            raise NotFoundError(f"monitoring action {action_id} not found")
        row.reverted_at = utcnow()
        row.details = {**(row.details or {}), "revert": outcome}
    return {"action": action_id, "kind": kind, **outcome}


def _revert_refresh(service: GalleryService, action_id: int, details: dict) -> dict:
    removed, missing, restored = [], [], []
    with service.ctx.sessions.begin() as session:
        for item in details.get("added", []):
            source = f"{REFRESH_PREFIX}{item['decision_id']}"
            t = session.get(FaceTemplate, item.get("template_id"))
            if t is None or t.source_sha256 != source:
                # Put back under another id by an earlier revert: the source still names it.
                t = session.scalar(
                    select(FaceTemplate).join(Subject, Subject.id == FaceTemplate.subject_id).where(
                        Subject.external_id == item["subject"], FaceTemplate.source_sha256 == source,
                        FaceTemplate.gallery_id == details.get("gallery_id", FaceTemplate.gallery_id)))
            if t is not None:
                session.delete(t)
                removed.append(t.id)
            else:
                missing.append(item.get("template_id"))
        session.flush()
        for old in details.get("replaced", []):
            subject = session.get(Subject, old["subject_id"])
            clash = session.scalar(select(FaceTemplate.id).where(
                FaceTemplate.subject_id == old["subject_id"], FaceTemplate.source_sha256 == old["source_sha256"]))
            if subject is None or clash is not None:
                continue
            # The same id when it is still free, so an earlier action naming it can be reverted too.
            same_id = session.get(FaceTemplate, old["template_id"]) is None
            row = FaceTemplate(
                id=old["template_id"] if same_id else None,
                gallery_id=subject.gallery_id, subject_id=subject.id, model_id=old["model_id"],
                model_sha256=old["model_sha256"], vector=_vector_from_b64(old["vector"]), quality=old["quality"],
                source_sha256=old["source_sha256"], box=old.get("box") or [],
            )
            if old.get("created_at"):
                row.created_at = dt.datetime.fromisoformat(old["created_at"])
            session.add(row)
            session.flush()
            restored.append({"template_id": row.id, "was": old["template_id"]})
    return {"removed_templates": removed, "already_gone": missing, "restored_templates": restored}


def _revert_recalibration(service: GalleryService, details: dict) -> dict:
    from facegate.modelops import tracking
    from facegate.modelops.registry import (
        PRODUCTION_ALIAS,
        promote_calibration,
        refresh_active_calibration,
        registered_model_name,
    )

    model_id, version = details["model_id"], details["version"]
    if not details.get("promoted"):
        tracking.client(service.settings).set_model_version_tag(
            registered_model_name(model_id), str(version), "reverted", "true")
        return {"production": "unchanged (the version was never promoted)", "version": version}
    current = _production_version(model_id, service.settings)
    if current != version:
        raise ConflictError(
            f"production is now version {current}, not {version} that this action promoted; change it by hand"
        )
    previous = details.get("previous_production")
    if previous is not None:
        promote_calibration(model_id, int(previous), service.settings)
    else:
        tracking.client(service.settings).delete_registered_model_alias(registered_model_name(model_id), PRODUCTION_ALIAS)
        refresh_active_calibration()
    return {"production": previous if previous is not None else "shipped default", "version": version}
