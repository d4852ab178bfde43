"""Thresholds a gallery decides with: its calibration in force and its target error rates.

Verification uses a false-accept rate per comparison (a subject with m templates gets m
chances, so FAR / m each); identification a false-positive identification rate per search,
spread over the gallery's templates.
"""

from __future__ import annotations

from facegate.calibration import Calibration
from facegate.errors import ModelMismatchError
from facegate.gallery.context import GalleryContext, gallery_settings
from facegate.gallery.schemas import ThresholdInfo
from facegate.storage.models import Gallery


def calibration_for(ctx: GalleryContext, gallery: Gallery) -> Calibration:
    """The provider's calibration for the gallery's weights (the registry's production version,
    or the shipped default), refused when it was measured on other weights."""
    calibration = ctx.calibrations.calibration_for(gallery.model_id, gallery.model_sha256)
    if calibration.model_sha256 != gallery.model_sha256:
        raise ModelMismatchError(f"the calibration for {gallery.model_id} was measured on other weights")
    return calibration


def verify_threshold(ctx: GalleryContext, gallery: Gallery, templates: int, far: float | None = None) -> ThresholdInfo:
    """A subject with m templates gets m chances to match: per-comparison FAR = FAR / m."""
    calibration = calibration_for(ctx, gallery)
    target = far or gallery_settings(gallery).verify_far
    per_comparison = target / max(templates, 1)
    return ThresholdInfo(
        threshold=calibration.threshold_at(per_comparison),
        target_rate=target,
        rate_kind="far_per_comparison",
        per_comparison_far=per_comparison,
        calibration=f"{calibration.name}: {calibration.source}",
        resolvable=calibration.resolvable(per_comparison),
    )


def identify_threshold(ctx: GalleryContext, gallery: Gallery, templates: int, fpir: float | None = None) -> ThresholdInfo:
    """The threshold that keeps one search's false-positive rate at ``fpir`` over ``templates``."""
    calibration = calibration_for(ctx, gallery)
    target = fpir or gallery_settings(gallery).identify_fpir
    threshold, per_comparison = calibration.identify_threshold(target, templates)
    return ThresholdInfo(
        threshold=threshold,
        target_rate=target,
        rate_kind="fpir_per_search",
        per_comparison_far=per_comparison,
        calibration=f"{calibration.name}: {calibration.source}",
        resolvable=calibration.resolvable(per_comparison),
    )


def calibration_shown(ctx: GalleryContext, gallery: Gallery) -> ThresholdInfo | None:
    """What the gallery decides with now; None (not an error) when its model does not match."""
    try:
        return verify_threshold(ctx, gallery, 1)
    except ModelMismatchError:
        return None
