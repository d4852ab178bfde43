"""The gallery service: the one place where enrollment and recognition decisions are made.

A thin facade over the job modules of :mod:`facegate.gallery` (catalog, keys, enrollment,
recognition, thresholds, decisions, model switch), all functions of one
:class:`~facegate.gallery.context.GalleryContext`. The REST API, the CLI and the web pages
call these methods and add nothing but transport. Every method names its caller
(``principal``, no default): internal jobs pass :data:`facegate.security.SYSTEM`.

Recognition and enrollment take photo bytes (:class:`PhotoInput`), a decoded frame
(:class:`FrameInput`) or faces already found (:class:`Probe`), through one decision path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import text

from facegate.calibration import Calibration, CalibrationProvider
from facegate.config import Settings, get_settings
from facegate.gallery import catalog, enrollment, keys, model_switch, recognition, thresholds
from facegate.gallery.context import DecisionObserver, GalleryContext, gallery_settings
from facegate.gallery.decisions import list_decisions
from facegate.gallery.inputs import FrameInput, PhotoInput, Probe, ProbeInput
from facegate.gallery.schemas import (
    ApiKeyCreated,
    ApiKeyOut,
    DetectedFace,
    EnrollReport,
    GalleryOut,
    GallerySettings,
    IdentifyResult,
    Page,
    SubjectIn,
    SubjectOut,
    SubjectUpdate,
    VerifyResult,
)
from facegate.security import SYSTEM, Principal
from facegate.storage.db import upgrade
from facegate.storage.models import Gallery

__all__ = ["GalleryService", "PhotoInput", "FrameInput", "Probe", "Principal", "SYSTEM"]


class GalleryService:
    """Galleries, subjects, keys, enrollment and recognition over one database.

    The service never migrates the database by itself (``facegate db upgrade`` and
    ``facegate serve`` do); ``migrate=True`` is for tools and tests on a new database.
    ``calibrations`` supplies the calibration in force (the shipped table by default; the
    shells pass the MLflow registry's), ``observers`` hear of every decision (metrics).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        migrate: bool = False,
        calibrations: CalibrationProvider | None = None,
        observers: Sequence[DecisionObserver] = (),
    ) -> None:
        self.ctx = GalleryContext(settings or get_settings(), calibrations, observers)
        if migrate:
            upgrade(self.ctx.database_url)
        self.ctx.search.prepare(self.ctx.db)

    # The context's parts, for the workflows and monitoring built on the service.
    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def database_url(self) -> str:
        return self.ctx.database_url

    def add_observer(self, observer: DecisionObserver) -> None:
        self.ctx.observers.append(observer)

    def close(self) -> None:
        self.ctx.close()

    # -- galleries ------------------------------------------------------------------------
    def create_gallery(
        self, name: str, model: str = "arcface", detector: str = "scrfd", settings: GallerySettings | None = None,
        *, principal: Principal,
    ) -> GalleryOut:
        return catalog.create_gallery(self.ctx, name, model, detector, settings, principal)

    def get_gallery(self, name: str, *, principal: Principal) -> GalleryOut:
        return catalog.get_gallery(self.ctx, name, principal)

    def list_galleries(self, cursor: str | None = None, limit: int = 50, *, principal: Principal) -> Page:
        return catalog.list_galleries(self.ctx, cursor, limit, principal)

    def update_gallery_settings(self, name: str, changes: dict[str, Any], *, principal: Principal) -> GalleryOut:
        return catalog.update_gallery_settings(self.ctx, name, changes, principal)

    def delete_gallery(self, name: str, *, principal: Principal) -> None:
        catalog.delete_gallery(self.ctx, name, principal)

    @staticmethod
    def gallery_settings(gallery: Gallery) -> GallerySettings:
        return gallery_settings(gallery)

    def calibration_for(self, gallery: Gallery) -> Calibration:
        return thresholds.calibration_for(self.ctx, gallery)

    # -- API keys -------------------------------------------------------------------------
    def create_api_key(
        self, name: str, scopes: Sequence[str], gallery: str | None = None, *, principal: Principal
    ) -> ApiKeyCreated:
        return keys.create_api_key(self.ctx, name, scopes, gallery, principal)

    def list_api_keys(self, *, principal: Principal) -> list[ApiKeyOut]:
        return keys.list_api_keys(self.ctx, principal)

    def revoke_api_key(self, key_id: int, *, principal: Principal) -> None:
        keys.revoke_api_key(self.ctx, key_id, principal)

    def authenticate(self, secret: str | None) -> Principal:
        return keys.authenticate(self.ctx, secret)

    def has_any_api_key(self) -> bool:
        return keys.has_any_api_key(self.ctx)

    # -- subjects and faces ---------------------------------------------------------------
    def create_subject(self, gallery: str, data: SubjectIn, *, principal: Principal) -> SubjectOut:
        return catalog.create_subject(self.ctx, gallery, data, principal)

    def get_subject(self, gallery: str, external_id: str, *, principal: Principal) -> SubjectOut:
        return catalog.get_subject(self.ctx, gallery, external_id, principal)

    def list_subjects(self, gallery: str, cursor: str | None = None, limit: int = 50, *, principal: Principal) -> Page:
        return catalog.list_subjects(self.ctx, gallery, cursor, limit, principal)

    def update_subject(
        self, gallery: str, external_id: str, changes: SubjectUpdate, *, principal: Principal
    ) -> SubjectOut:
        return catalog.update_subject(self.ctx, gallery, external_id, changes, principal)

    def delete_subject(self, gallery: str, external_id: str, *, principal: Principal) -> int:
        """Erase a subject with its templates, crops and index entries; returns templates erased."""
        return catalog.delete_subject(self.ctx, gallery, external_id, principal)

    def list_faces(
        self, gallery: str, external_id: str, cursor: str | None = None, limit: int = 50, *, principal: Principal
    ) -> Page:
        return catalog.list_faces(self.ctx, gallery, external_id, cursor, limit, principal)

    def delete_face(self, gallery: str, external_id: str, face_id: int, *, principal: Principal) -> None:
        catalog.delete_face(self.ctx, gallery, external_id, face_id, principal)

    # -- enrollment -----------------------------------------------------------------------
    def enroll(
        self,
        gallery: str,
        external_id: str,
        photos: Iterable[ProbeInput],
        display_name: str | None = None,
        attributes: dict[str, Any] | None = None,
        create_subject: bool = True,
        face_index: int | None = None,
        *,
        principal: Principal,
    ) -> EnrollReport:
        """Enroll photos, frames or probes of one subject; each accepted or rejected on its own."""
        return enrollment.enroll(
            self.ctx, gallery, external_id, photos, display_name, attributes, create_subject, face_index, principal
        )

    def import_templates(
        self, gallery: str, rows: Sequence[tuple[str, str, np.ndarray]], source: str = "import", *, principal: Principal
    ) -> int:
        """Bulk-load ready-made templates ``(external_id, display_name, vector)``."""
        return enrollment.import_templates(self.ctx, gallery, rows, source, principal)

    def switch_model(
        self,
        gallery: str,
        model: str,
        photos: dict[str, list[PhotoInput]],
        detector: str | None = None,
        allow_partial: bool = False,
        *,
        principal: Principal,
    ) -> dict[str, Any]:
        return model_switch.switch_model(self.ctx, gallery, model, photos, detector, allow_partial, principal)

    # -- recognition ----------------------------------------------------------------------
    def detect(
        self, photo: ProbeInput, model: str = "arcface", detector: str = "scrfd", *, principal: Principal
    ) -> list[DetectedFace]:
        return recognition.detect(self.ctx, photo, model, detector, principal)

    def verify(
        self,
        gallery: str,
        external_id: str,
        photo: ProbeInput,
        far: float | None = None,
        request_id: str = "",
        crosscheck: bool = False,
        *,
        principal: Principal,
        extra_details: dict | None = None,
    ) -> VerifyResult:
        """1:1 on a photo, frame or probe; ``crosscheck`` also searches 1:N for better matches;
        ``extra_details`` (e.g. the liveness result) are logged with the decision."""
        return recognition.verify(self.ctx, gallery, external_id, photo, far, request_id, crosscheck, principal,
                                  extra_details)

    def identify(
        self,
        gallery: str,
        photo: ProbeInput,
        top_k: int = 5,
        fpir: float | None = None,
        request_id: str = "",
        max_faces: int = 50,
        exact: bool | None = None,
        *,
        principal: Principal,
        extra_details: dict | None = None,
    ) -> IdentifyResult:
        """1:N for every face of a photo, frame or probe; ``unknown`` under the threshold."""
        return recognition.identify(self.ctx, gallery, photo, top_k, fpir, request_id, max_faces, exact, principal,
                                    extra_details)

    # -- decision log and readiness -------------------------------------------------------
    def list_decisions(
        self, gallery: str, cursor: str | None = None, limit: int = 50, kind: str | None = None, *,
        principal: Principal,
    ) -> Page:
        return list_decisions(self.ctx, gallery, cursor, limit, kind, principal)

    def readiness(self) -> dict[str, Any]:
        """Database reachable, schema at head, models verified: what a load balancer asks."""
        from facegate.models.registry import verified_path

        with self.ctx.db.connect() as connection:
            connection.execute(text("SELECT 1"))
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        for key in ("scrfd_500m", "arcface_mbf", "dlib_resnet", "dlib_shape5"):
            verified_path(key)
        return {"database": self.ctx.db.dialect.name, "schema_revision": revision, "models": "verified"}
