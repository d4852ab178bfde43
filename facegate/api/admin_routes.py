"""Read-only routes for the administration page: the models with their licences and checksums,
and the calibration a gallery decides with (its threshold table and, when measured, its ROC).

They reuse what the CLI and the service use (``facegate models``' rows, the gallery's
calibration and verify threshold), so the page shows the same numbers as the command line.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from facegate.api.deps import PrincipalDep, ServiceDep
from facegate.gallery.context import find_gallery, gallery_settings
from facegate.gallery.thresholds import calibration_for, verify_threshold
from facegate.models.registry import MODELS, model_rows
from facegate.security import authorize
from facegate.storage.models import Gallery

router = APIRouter(prefix="/api/v1", tags=["admin"])

# The files a gallery's detector name loads (the recognizer's file is found by its sha256).
DETECTOR_FILES: dict[str, tuple[str, ...]] = {"scrfd": ("scrfd_500m",), "dlib": ("dlib_hog",)}


class ModelOut(BaseModel):
    key: str
    role: str = Field(description="detector, recognizer or landmarks")
    file: str = Field(description="package/resource of the weights, or what a built-in model is")
    description: str
    licence: str
    commercial_use: bool
    sha256: str | None = Field(description="The checksum FaceGate was built against; None for built-in models.")
    checksum: str = Field(description="ok, built in, or the error code of the check (model_checksum_mismatch, ...)")
    used_by: list[str] = Field(default_factory=list, description="Galleries that decide with this file.")


class ThresholdPoint(BaseModel):
    far: float
    threshold: float
    measured: bool = Field(description="False below the calibration's smallest measured FAR (extrapolated).")


class RocPoint(BaseModel):
    far: float
    tar: float
    threshold: float | None = None


class CalibrationOut(BaseModel):
    gallery: str
    model_id: str
    model_sha256: str
    name: str
    source: str
    impostor_pairs: int
    min_far: float = Field(description="Below this FAR the thresholds are extrapolated, not measured.")
    table: list[ThresholdPoint] = Field(description="FAR per comparison -> similarity threshold, FAR decreasing.")
    verify_far: float = Field(description="The gallery's target false-accept rate per verification.")
    verify_threshold: float = Field(description="The threshold that gives a one-template subject that FAR.")
    resolvable: bool = Field(description="False when verify_far is below what the calibration sample can show.")
    identify_fpir: float
    roc: list[RocPoint] | None = Field(None, description="FAR / TAR points, when the calibration holds them.")
    extra: dict = Field(default_factory=dict, description="What else the calibration records (bootstrap intervals, ...).")


@router.get("/models", response_model=list[ModelOut])
def list_models(service: ServiceDep, principal: PrincipalDep) -> list[ModelOut]:
    """Every model file FaceGate can use: its role, licence (commercial use or not), whether its
    sha256 matches the one FaceGate was calibrated on, and the galleries that use it. Admin scope."""
    authorize(principal, "admin")
    with service.ctx.sessions() as session:
        galleries = session.execute(select(Gallery.name, Gallery.model_sha256, Gallery.detector)).all()
    used: dict[str, list[str]] = {}
    for name, sha256, detector in galleries:
        keys = [k for k, spec in MODELS.items() if spec.sha256 == sha256 and spec.role == "recognizer"]
        for key in keys + list(DETECTOR_FILES.get(detector, ())):
            used.setdefault(key, []).append(name)
    return [ModelOut.model_validate({**row, "used_by": used.get(str(row["key"]), [])}) for row in model_rows()]


def _roc(extra: dict) -> list[RocPoint] | None:
    """ROC points stored with the calibration, as {"far": [...], "tar": [...], "thresholds": [...]}
    or a list of {"far", "tar", "threshold"} records; None when there are none."""
    roc = extra.get("roc")
    if isinstance(roc, dict) and roc.get("far") and roc.get("tar"):
        thresholds = roc.get("thresholds") or [None] * len(roc["far"])
        return [RocPoint(far=f, tar=t, threshold=h) for f, t, h in zip(roc["far"], roc["tar"], thresholds)]
    if isinstance(roc, list) and roc:
        return [RocPoint(**point) for point in roc]
    return None


@router.get("/galleries/{gallery}/calibration", response_model=CalibrationOut)
def gallery_calibration(gallery: str, service: ServiceDep, principal: PrincipalDep) -> CalibrationOut:
    """The calibration in force for the gallery's model (the registry's production version, or
    the shipped default): its FAR -> threshold table, the gallery's verify FAR and the threshold
    it gives, and the ROC points when the calibration holds them. Proctor or admin scope; a model
    that does not match its calibration is a 409 (model_mismatch)."""
    ctx = service.ctx
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        authorize(principal, "proctor", g)
        calibration = calibration_for(ctx, g)
        shown = verify_threshold(ctx, g, 1)
        fpir = gallery_settings(g).identify_fpir
        name, model_id, model_sha256 = g.name, g.model_id, g.model_sha256
    extra = {k: v for k, v in calibration.extra.items() if k != "roc"}
    return CalibrationOut(
        gallery=name,
        model_id=model_id,
        model_sha256=model_sha256,
        name=calibration.name,
        source=calibration.source,
        impostor_pairs=calibration.impostor_pairs,
        min_far=calibration.min_far,
        table=[ThresholdPoint(far=f, threshold=t, measured=calibration.resolvable(f))
               for f, t in zip(calibration.fars, calibration.thresholds)],
        verify_far=shown.target_rate,
        verify_threshold=shown.threshold,
        resolvable=shown.resolvable,
        identify_fpir=fpir,
        roc=_roc(calibration.extra),
        extra=extra,
    )
