"""Monitoring routes (admin scope): the drift report, the automatic response, and undoing it.

They call the same monitoring functions as ``facegate monitor``, so the web page, the API and the
command line show the same numbers.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, ValidationError

from facegate.api.deps import PrincipalDep, RowId, ServiceDep
from facegate.errors import InvalidRequestError
from facegate.monitoring.drift import DriftReport, DriftWindows, drift_limits, gallery_drift
from facegate.monitoring.response import (
    OpsActionOut,
    ResponsePolicy,
    ResponseReport,
    list_actions,
    revert_action,
)
from facegate.monitoring.response import respond as respond_to_drift

router = APIRouter(prefix="/api/v1", tags=["monitoring"])


def _windows(**values: Any) -> DriftWindows:
    try:
        return DriftWindows(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise InvalidRequestError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None


class RespondIn(BaseModel):
    windows: DriftWindows = Field(default_factory=DriftWindows)
    policy: ResponsePolicy = Field(default_factory=ResponsePolicy)
    apply: bool = Field(False, description="Carry out and record the actions; otherwise only plan them.")


@router.get("/galleries/{gallery}/monitoring/drift", response_model=DriftReport)
def drift(
    gallery: str,
    service: ServiceDep,
    principal: PrincipalDep,
    reference_days: Annotated[float | None, Query(gt=0, le=36500)] = None,
    recent_days: Annotated[float | None, Query(gt=0, le=36500)] = None,
    reference_last: Annotated[int | None, Query(ge=1)] = None,
    recent_last: Annotated[int | None, Query(ge=1)] = None,
    psi_limit: Annotated[float | None, Query(gt=0, le=1e6)] = None,
    p_value: Annotated[float | None, Query(gt=0, lt=1)] = None,
    min_samples: Annotated[int | None, Query(ge=2)] = None,
) -> DriftReport:
    """Drift of scores, quality, brightness, face size and reject / no-face rates between a
    reference and a recent window (by days, or by the last N decisions); the limits default to
    PSI 0.2 (raised to the noise level of small windows), p 0.01 and 20 values per window."""
    windows = _windows(reference_days=reference_days, recent_days=recent_days,
                       reference_last=reference_last, recent_last=recent_last)
    return gallery_drift(service, gallery, windows, drift_limits(psi_limit, p_value, min_samples), principal=principal)


@router.post("/galleries/{gallery}/monitoring/respond", response_model=ResponseReport)
def respond(gallery: str, body: RespondIn, service: ServiceDep, principal: PrincipalDep) -> ResponseReport:
    """Plan (or with ``apply`` carry out) recalibration and template refresh after drift."""
    return respond_to_drift(service, gallery, body.windows, body.policy, apply=body.apply, principal=principal)


@router.get("/galleries/{gallery}/monitoring/actions", response_model=list[OpsActionOut])
def actions(gallery: str, service: ServiceDep, principal: PrincipalDep) -> list[OpsActionOut]:
    """The gallery's recorded monitoring actions (recalibrations, template refreshes), newest first."""
    return list_actions(service, gallery, principal=principal)


@router.post("/monitoring/actions/{action_id}/revert")
def revert(action_id: RowId, service: ServiceDep, principal: PrincipalDep) -> dict[str, Any]:
    """Undo one recorded action (remove added templates / restore the production calibration)."""
    return revert_action(service, action_id, principal=principal)
