"""The gallery context: what every gallery job shares (settings, database sessions, the template
search, the face engines, the calibrations in force, the decision observers) and the lookups
they all start with. One context is built per service; the job modules are functions of it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from facegate.calibration import CalibrationProvider, ShippedCalibrations
from facegate.config import Settings
from facegate.engine import EnginePool, FaceEngine
from facegate.errors import InvalidRequestError, ModelMismatchError, NotFoundError
from facegate.gallery.schemas import GallerySettings
from facegate.imaging import ImageLimits
from facegate.security import Principal, caller
from facegate.storage.db import default_database_url, make_engine, session_factory
from facegate.storage.models import Gallery, Subject
from facegate.storage.sealing import Sealer, attach, load_key
from facegate.storage.vector_index import GallerySearch

log = logging.getLogger(__name__)


class DecisionObserver(Protocol):
    """Told of every logged decision (Prometheus metrics is one); must not raise."""

    def observe_decision(
        self, kind: str, outcome: str, score: float | None = None, quality: float | None = None,
        details: dict | None = None,
    ) -> None: ...


class GalleryContext:
    """Database, search, engines and calibrations of one service, built from its settings."""

    def __init__(
        self,
        settings: Settings,
        calibrations: CalibrationProvider | None = None,
        observers: Sequence[DecisionObserver] = (),
    ) -> None:
        self.settings = settings
        self.database_url = settings.database_url or default_database_url(settings.data_dir)
        self.db = make_engine(self.database_url)
        key = load_key(settings)
        self.sealer = Sealer(key) if key is not None else None
        attach(self.db, self.sealer)
        self.sessions = session_factory(self.db)
        self.search = GallerySearch(
            index_dir=settings.data_dir / "index",
            ann_min_templates=settings.ann_min_templates,
            dialect=self.db.dialect.name,
            build_in_background=settings.ann_build_in_background,
            sealer=self.sealer,
            search_index=settings.search_index,
            build_threads=settings.ann_build_threads,
        )
        self.image_limits = ImageLimits.from_settings(settings)
        self.engines = EnginePool(settings)
        self.calibrations: CalibrationProvider = calibrations or ShippedCalibrations()
        self.observers: list[DecisionObserver] = list(observers)

    def close(self) -> None:
        self.search.close()
        self.db.dispose()

    def named_engine(self, model: str, detector: str) -> FaceEngine:
        """The engine for a model and detector named by the caller; an unknown name is the
        caller's mistake (400), not a server error."""
        try:
            return self.engines.get(model, detector)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None

    def engine_for(self, gallery: Gallery) -> FaceEngine:
        """The gallery's engine, refused when the installed weights are not the enrolled ones."""
        engine = self.engines.get(gallery.model_id, gallery.detector)
        if engine.model_sha256 != gallery.model_sha256:
            raise ModelMismatchError(
                f"gallery {gallery.name!r} was enrolled with {gallery.model_id}@{gallery.model_sha256[:12]} but the "
                f"installed model is {engine.model_id}@{engine.model_sha256[:12]}; re-enroll the gallery"
            )
        return engine

    def notify(self, kind: str, outcome: str, score: float | None, quality: float | None, details: dict) -> None:
        """Tell every observer of a decision already committed; an observer's failure is logged,
        never turned into a failed request."""
        for observer in self.observers:
            try:
                observer.observe_decision(kind, outcome, score=score, quality=quality, details=details)
            except Exception:  # noqa: BLE001 - the decision stands whatever an observer does
                log.exception("decision observer %r failed", observer)


def gallery_settings(gallery: Gallery) -> GallerySettings:
    return GallerySettings(**(gallery.settings or {}))


def find_gallery(session: Session, name: str, principal: Principal) -> Gallery:
    """The named gallery as this caller may see it (another gallery's key sees nothing)."""
    principal = caller(principal)
    gallery = session.scalar(select(Gallery).where(Gallery.name == name))
    if gallery is None or (principal.gallery_id is not None and gallery.id != principal.gallery_id):
        raise NotFoundError(f"gallery {name!r} not found")
    return gallery


def find_subject(session: Session, gallery: Gallery, external_id: str) -> Subject:
    subject = session.scalar(
        select(Subject).where(Subject.gallery_id == gallery.id, Subject.external_id == external_id)
    )
    if subject is None:
        raise NotFoundError(f"subject {external_id!r} not found in gallery {gallery.name!r}")
    return subject


def template_count(session: Session, gallery_id: int) -> int:
    """The gallery's templates: kept by the database with every write (one primary-key read)."""
    return int(session.scalar(select(Gallery.template_count).where(Gallery.id == gallery_id)) or 0)
