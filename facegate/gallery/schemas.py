"""Typed results of the gallery service: what the API returns and the CLI prints."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GallerySettings(BaseModel):
    """Per-gallery policy. Rates are the error rates the organisation accepts."""

    model_config = ConfigDict(extra="forbid")

    verify_far: float = Field(1e-4, gt=0, le=0.1, description="False-accept rate per 1:1 verification.")
    identify_fpir: float = Field(
        1e-3, gt=0, le=0.1, description="False-positive identification rate for a whole 1:N search."
    )
    store_crops: bool = Field(False, description="Keep the aligned face crop beside each template.")
    max_templates_per_subject: int = Field(20, ge=1, le=1000)
    reject_cross_matches: bool = Field(
        True, description="Refuse an enrollment photo that matches another subject (else only flag it)."
    )
    min_quality: float = Field(0.5, ge=0, le=1, description="Minimum overall quality to enroll a face.")
    calibration: str = Field(
        "default", description="Kept for stored settings; thresholds come from the model's active calibration "
        "(the MLflow 'production' version, else the shipped default), shown in GalleryOut.active_calibration."
    )
    # Alerts and lockout (the workflows).
    alert_webhook_url: str = Field("", description="Alerts are POSTed here as JSON, signed with the secret.")
    alert_webhook_secret: str = Field("", description="HMAC-SHA256 key for the X-FaceGate-Signature header.")
    lockout_failures: int = Field(5, ge=1, le=1000, description="Failed verifications of one id that lock it.")
    lockout_minutes: float = Field(15.0, gt=0, description="Window in which those failures are counted.")
    login_near_miss_fpir: float = Field(
        0.01, gt=0, le=1, description="A failed face-only login counts toward the lockout of the nearest account "
        "only when the face scores above the identify threshold calibrated at this rate (looser than "
        "identify_fpir): a look-alike or a spoof, not any passer-by, whose failures would otherwise lock out "
        "whoever resembles them most. Strangers reach it at this rate per attempt.",
    )
    probe_retention_days: float = Field(
        90.0, ge=0, le=36500, description="Probe templates kept with decisions (for recalibration and drift) are "
        "dropped after this many days; 0 keeps them.",
    )
    decision_retention_days: float = Field(
        730.0, ge=0, le=36500, description="Decisions are deleted after this many days; 0 keeps them.",
    )
    self_service: bool = Field(
        False, description="Anyone, without a key, may register an account, log in by face and check a photo's "
        "quality in this gallery (the self-service enrollment, login and kiosk pages).",
    )
    liveness: Literal["off", "passive", "active"] = Field(
        "off", description="Presentation-attack defence for check-in, face login and access: off (one photo); "
        "passive (a short recording, judged by the passive signals); active (a server-issued challenge of 1-3 "
        "actions answered by a recording, plus the passive signals).",
    )
    liveness_challenge_seconds: float = Field(
        60.0, gt=0, le=3600, description="A liveness challenge must be answered within this many seconds.")
    liveness_max_seconds: float = Field(
        4.0, gt=0.5, le=30, description="The actions of a challenge must all happen within this many seconds "
        "of the recording's first frame.")


class GalleryOut(BaseModel):
    id: int
    name: str
    model_id: str
    model_sha256: str
    detector: str
    settings: GallerySettings
    created_at: dt.datetime
    subjects: int = 0
    templates: int = 0
    active_calibration: "ThresholdInfo | None" = Field(
        None, description="The calibration in use and the verify threshold it gives a one-template subject."
    )


SUBJECT_ID_PATTERN = r"^[^/\x00-\x1f\x7f]+$"


def check_subject_id(external_id: str) -> str:
    """The rules of ``SubjectIn.external_id`` for an id that arrives another way (an enroll
    URL that creates the subject): the same id rules on every route."""
    if not 1 <= len(external_id) <= 200 or not re.match(SUBJECT_ID_PATTERN, external_id):
        raise ValueError("a subject id is 1 to 200 characters, without '/' or control characters")
    return external_id


class SubjectIn(BaseModel):
    # No "/": the id is a path segment of the subject's URLs (an encoded %2F is decoded before routing);
    # no control character (NUL, CR, LF): it lands in logs, CSV files and headers.
    external_id: str = Field(..., min_length=1, max_length=200, pattern=SUBJECT_ID_PATTERN)
    display_name: str = Field("", max_length=300)
    attributes: dict[str, Any] = Field(default_factory=dict)


class SubjectUpdate(BaseModel):
    display_name: str | None = Field(None, max_length=300)
    attributes: dict[str, Any] | None = None


class SubjectOut(BaseModel):
    external_id: str
    display_name: str
    attributes: dict[str, Any]
    templates: int
    created_at: dt.datetime
    updated_at: dt.datetime


class FaceOut(BaseModel):
    id: int
    subject_external_id: str
    model_id: str
    quality: float
    source_sha256: str
    box: list[float]
    has_crop: bool
    created_at: dt.datetime


class Page(BaseModel):
    items: list[Any]
    next_cursor: str | None = None


class DetectedFace(BaseModel):
    box: list[float]
    score: float
    landmarks: list[list[float]] | None
    quality: dict[str, Any]


EnrollStatus = Literal["accepted", "rejected", "skipped"]


class EnrollItem(BaseModel):
    image: str
    status: EnrollStatus
    reason: str = ""
    code: str = ""
    template_id: int | None = None
    quality: float | None = None
    matches_subject: str | None = None
    match_score: float | None = None


class EnrollReport(BaseModel):
    subject: str
    created_subject: bool
    accepted: int
    rejected: int
    skipped: int
    items: list[EnrollItem]


class ThresholdInfo(BaseModel):
    threshold: float
    target_rate: float
    rate_kind: Literal["far_per_comparison", "fpir_per_search"]
    per_comparison_far: float
    calibration: str
    resolvable: bool = Field(description="False when the rate is below what the calibration sample can show.")


class VerifyResult(BaseModel):
    decision_id: int
    subject: str
    match: bool
    score: float
    threshold: ThresholdInfo
    face: DetectedFace
    faces_in_image: int
    templates_compared: int
    better_matches: list["Candidate"] = Field(
        default_factory=list, description="With crosscheck: other subjects this face matches better (over the threshold)."
    )


class Candidate(BaseModel):
    subject: str
    display_name: str
    score: float


class IdentifiedFace(BaseModel):
    face: DetectedFace
    decision: Literal["match", "unknown"]
    subject: str | None
    display_name: str | None = None
    score: float | None
    candidates: list[Candidate]


class IdentifyResult(BaseModel):
    decision_id: int
    faces: list[IdentifiedFace]
    threshold: ThresholdInfo
    gallery_templates: int

    def main_face(self) -> IdentifiedFace | None:
        """The largest face: the person at the camera, not someone passing behind."""
        area = lambda f: (f.face.box[2] - f.face.box[0]) * (f.face.box[3] - f.face.box[1])  # noqa: E731
        return max(self.faces, key=area) if self.faces else None


class ApiKeyOut(BaseModel):
    id: int
    prefix: str
    name: str
    scopes: list[str]
    gallery: str | None
    created_at: dt.datetime
    revoked: bool


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="Shown once: only its hash is stored.")


class DecisionOut(BaseModel):
    id: int
    kind: str
    outcome: str
    subject: str | None
    score: float | None
    threshold: float | None
    target_rate: float | None
    calibration: str
    request_id: str
    details: dict[str, Any]
    created_at: dt.datetime
