"""The gallery service: the one place where enrollment and recognition decisions are made.

The REST API, the CLI and the web pages call these methods and add nothing but transport.
Every verify and identify is written to the decision log with the threshold, the target
error rate and the calibration it used.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import cv2
import numpy as np
from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facegate.calibration import Calibration
from facegate.config import Settings, get_settings
from facegate.engine import Face, FaceEngine, foreground_faces, get_engine, main_face_index
from facegate.errors import (
    AuthenticationError,
    ConflictError,
    FaceGateError,
    InvalidRequestError,
    ManyFacesError,
    ModelMismatchError,
    NoFaceError,
    NotFoundError,
    PermissionDeniedError,
)
from facegate.gallery.schemas import (
    ApiKeyCreated,
    ApiKeyOut,
    Candidate,
    DecisionOut,
    DetectedFace,
    EnrollItem,
    EnrollReport,
    FaceOut,
    GalleryOut,
    GallerySettings,
    IdentifiedFace,
    IdentifyResult,
    Page,
    SubjectIn,
    SubjectOut,
    SubjectUpdate,
    ThresholdInfo,
    VerifyResult,
)
from facegate.imaging import ImageLimits, decode_image, image_sha256
from facegate.storage.db import default_database_url, make_engine, session_factory, upgrade
from facegate.storage.models import ApiKey, Decision, FaceCrop, FaceTemplate, Gallery, Subject, utcnow
from facegate.storage.vector_index import GallerySearch

if TYPE_CHECKING:  # monitoring imports the service; only the type checker needs these names
    from facegate.monitoring.drift import DriftLimits, DriftReport, DriftWindows
    from facegate.monitoring.metrics import FaceGateMetrics
    from facegate.monitoring.response import ResponsePolicy, ResponseReport

SCOPES = ("admin", "enroll", "recognize")
KEY_PREFIX = "fg_"


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("invalid cursor: pass back the next_cursor of the previous page") from None


def page_of(rows: Sequence, limit: int, items: list) -> Page:
    """A keyset page: ``rows`` were fetched with ``limit + 1`` to learn whether more follow."""
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].id) if more else None)


def newest_first(session: Session, query, id_column, cursor: str | None, limit: int) -> list:
    """Rows of a log (decisions, alerts), newest first, after the cursor; ``limit + 1`` of them
    so :func:`page_of` can tell whether more follow."""
    before = decode_cursor(cursor)
    if before:
        query = query.where(id_column < before)
    return list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))


def template_row(gallery_id: int, subject_id: int, face: Face, source_sha256: str) -> FaceTemplate:
    """The stored form of an enrolled face: its template, model tag, quality and source hash."""
    return FaceTemplate(
        gallery_id=gallery_id,
        subject_id=subject_id,
        model_id=face.template.model_id,
        model_sha256=face.template.model_sha256,
        vector=face.template.vector,
        quality=float(face.quality.score),
        source_sha256=source_sha256,
        box=[round(float(v), 1) for v in face.detection.box],
    )


def hash_secret(secret: str) -> str:
    """API secrets are 256-bit random tokens, so a plain SHA-256 is a sound one-way store."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class PhotoInput:
    """One uploaded photo: its bytes and a name to report it by."""

    name: str
    data: bytes


@dataclass
class Principal:
    """Who is calling: an API key's scopes and, if it is bound to one, its gallery."""

    key_id: int | None
    scopes: frozenset[str]
    gallery_id: int | None

    def require(self, scope: str, gallery: Gallery | None = None) -> None:
        if "admin" not in self.scopes and scope not in self.scopes:
            raise PermissionDeniedError(f"this API key lacks the '{scope}' scope")
        if gallery is not None and self.gallery_id is not None and gallery.id != self.gallery_id:
            raise NotFoundError(f"gallery {gallery.name!r} not found")


SYSTEM = Principal(key_id=None, scopes=frozenset({"admin"}), gallery_id=None)


class GalleryService:
    def __init__(self, settings: Settings | None = None, database_url: str | None = None, migrate: bool = True) -> None:
        self.settings = settings or get_settings()
        self.database_url = database_url or self.settings.database_url or default_database_url(self.settings.data_dir)
        if migrate:
            upgrade(self.database_url)
        self.db = make_engine(self.database_url)
        self.sessions = session_factory(self.db)
        self.search = GallerySearch(
            index_dir=self.settings.data_dir / "index",
            ann_min_templates=self.settings.ann_min_templates,
            dialect=self.db.dialect.name,
            build_in_background=self.settings.ann_build_in_background,
        )
        self.image_limits = ImageLimits.from_settings(self.settings)
        self._engine_lock = threading.Lock()

    def close(self) -> None:
        self.search.close()
        self.db.dispose()

    # -- helpers --------------------------------------------------------------------------
    def _named_engine(self, model: str, detector: str) -> FaceEngine:
        """The shared engine for a model and detector named by the caller; an unknown name is
        the caller's mistake (400), not a server error."""
        with self._engine_lock:
            try:
                return get_engine(model, detector)
            except ValueError as exc:
                raise InvalidRequestError(str(exc)) from None

    def engine_for(self, gallery: Gallery) -> FaceEngine:
        with self._engine_lock:
            engine = get_engine(gallery.model_id, gallery.detector)
        if engine.model_sha256 != gallery.model_sha256:
            raise ModelMismatchError(
                f"gallery {gallery.name!r} was enrolled with {gallery.model_id}@{gallery.model_sha256[:12]} but the "
                f"installed model is {engine.model_id}@{engine.model_sha256[:12]}; re-enroll the gallery"
            )
        return engine

    def calibration_for(self, gallery: Gallery) -> Calibration:
        """The registry's production calibration for the gallery's weights, else the default."""
        from facegate.modelops.registry import active_calibration

        calibration = active_calibration(gallery.model_id, self.settings, gallery.model_sha256)
        if calibration.model_sha256 != gallery.model_sha256:
            raise ModelMismatchError(f"the calibration for {gallery.model_id} was measured on other weights")
        return calibration

    @staticmethod
    def gallery_settings(gallery: Gallery) -> GallerySettings:
        return GallerySettings(**(gallery.settings or {}))

    def _gallery(self, session: Session, name: str, principal: Principal) -> Gallery:
        gallery = session.scalar(select(Gallery).where(Gallery.name == name))
        if gallery is None or (principal.gallery_id is not None and gallery.id != principal.gallery_id):
            raise NotFoundError(f"gallery {name!r} not found")
        return gallery

    @staticmethod
    def _subject(session: Session, gallery: Gallery, external_id: str) -> Subject:
        subject = session.scalar(
            select(Subject).where(Subject.gallery_id == gallery.id, Subject.external_id == external_id)
        )
        if subject is None:
            raise NotFoundError(f"subject {external_id!r} not found in gallery {gallery.name!r}")
        return subject

    def _decode(self, photo: PhotoInput) -> np.ndarray:
        return decode_image(photo.data, self.image_limits, name=photo.name)

    @staticmethod
    def _face_out(face: Face) -> DetectedFace:
        d = face.detection.to_dict()
        return DetectedFace(box=d["box"], score=d["score"], landmarks=d["landmarks"], quality=face.quality.to_dict())

    @staticmethod
    def _template_count(session: Session, gallery_id: int) -> int:
        return int(session.scalar(select(func.count(FaceTemplate.id)).where(FaceTemplate.gallery_id == gallery_id)) or 0)

    # -- galleries ------------------------------------------------------------------------
    def create_gallery(
        self,
        name: str,
        model: str = "arcface",
        detector: str = "scrfd",
        settings: GallerySettings | None = None,
        principal: Principal = SYSTEM,
    ) -> GalleryOut:
        principal.require("admin")
        if principal.gallery_id is not None:
            raise PermissionDeniedError("a gallery-bound key cannot create galleries")
        engine = self._named_engine(model, detector)
        with self.sessions.begin() as session:
            if session.scalar(select(Gallery).where(Gallery.name == name)) is not None:
                raise ConflictError(f"gallery {name!r} already exists")
            gallery = Gallery(
                name=name,
                model_id=engine.model_id,
                model_sha256=engine.model_sha256,
                detector=detector,
                settings=(settings or GallerySettings()).model_dump(),
            )
            session.add(gallery)
            session.flush()
            return self._gallery_out(session, gallery)

    def _gallery_out(self, session: Session, gallery: Gallery) -> GalleryOut:
        subjects = session.scalar(select(func.count(Subject.id)).where(Subject.gallery_id == gallery.id)) or 0
        return GalleryOut(
            id=gallery.id,
            name=gallery.name,
            model_id=gallery.model_id,
            model_sha256=gallery.model_sha256,
            detector=gallery.detector,
            # The webhook secret is write-only: shown as set or not, never echoed.
            settings=self.gallery_settings(gallery).model_copy(
                update={"alert_webhook_secret": "***" if (gallery.settings or {}).get("alert_webhook_secret") else ""}
            ),
            created_at=gallery.created_at,
            subjects=int(subjects),
            templates=self._template_count(session, gallery.id),
            active_calibration=self._calibration_shown(gallery),
        )

    def _calibration_shown(self, gallery: Gallery) -> ThresholdInfo | None:
        """What the gallery decides with now; None (not an error) when its model does not match."""
        try:
            return self._verify_threshold(gallery, 1)
        except ModelMismatchError:
            return None

    def get_gallery(self, name: str, principal: Principal = SYSTEM) -> GalleryOut:
        with self.sessions() as session:
            return self._gallery_out(session, self._gallery(session, name, principal))

    def list_galleries(self, cursor: str | None = None, limit: int = 50, principal: Principal = SYSTEM) -> Page:
        limit = max(1, min(limit, 500))
        with self.sessions() as session:
            query = select(Gallery).where(Gallery.id > decode_cursor(cursor)).order_by(Gallery.id).limit(limit + 1)
            if principal.gallery_id is not None:
                query = query.where(Gallery.id == principal.gallery_id)
            rows = list(session.scalars(query))
            items = [self._gallery_out(session, g) for g in rows[:limit]]
            return page_of(rows, limit, items)

    def update_gallery_settings(self, name: str, changes: dict, principal: Principal = SYSTEM) -> GalleryOut:
        principal.require("admin")
        with self.sessions.begin() as session:
            gallery = self._gallery(session, name, principal)
            if changes.get("alert_webhook_secret") == "***":  # the masked value sent back unchanged
                changes = {k: v for k, v in changes.items() if k != "alert_webhook_secret"}
            merged = self.gallery_settings(gallery).model_dump() | changes
            try:
                gallery.settings = GallerySettings(**merged).model_dump()
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
                raise InvalidRequestError(f"invalid gallery settings: {problems}") from None
            return self._gallery_out(session, gallery)

    def delete_gallery(self, name: str, principal: Principal = SYSTEM) -> None:
        principal.require("admin")
        with self.sessions.begin() as session:
            gallery = self._gallery(session, name, principal)
            gallery_id = gallery.id
            session.delete(gallery)
        self.search.invalidate(gallery_id)

    # -- API keys -------------------------------------------------------------------------
    def create_api_key(
        self, name: str, scopes: Sequence[str], gallery: str | None = None, principal: Principal = SYSTEM
    ) -> ApiKeyCreated:
        principal.require("admin")
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise InvalidRequestError(f"scopes must be some of {', '.join(SCOPES)}; got {sorted(scopes)}")
        prefix = secrets.token_hex(4)
        secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        with self.sessions.begin() as session:
            gallery_row = self._gallery(session, gallery, principal) if gallery else None
            if principal.gallery_id is not None and gallery_row is None:
                raise PermissionDeniedError("a gallery-bound key can only create keys for its own gallery")
            key = ApiKey(
                prefix=prefix,
                secret_hash=hash_secret(secret),
                name=name,
                scopes=sorted(set(scopes)),
                gallery_id=gallery_row.id if gallery_row else None,
            )
            session.add(key)
            session.flush()
            return ApiKeyCreated(**self._key_out(key, gallery_row).model_dump(), secret=secret)

    @staticmethod
    def _key_out(key: ApiKey, gallery: Gallery | None) -> ApiKeyOut:
        return ApiKeyOut(
            id=key.id,
            prefix=key.prefix,
            name=key.name,
            scopes=list(key.scopes),
            gallery=gallery.name if gallery else None,
            created_at=key.created_at,
            revoked=key.revoked_at is not None,
        )

    def list_api_keys(self, principal: Principal = SYSTEM) -> list[ApiKeyOut]:
        principal.require("admin")
        with self.sessions() as session:
            query = select(ApiKey, Gallery).outerjoin(Gallery, ApiKey.gallery_id == Gallery.id).order_by(ApiKey.id)
            if principal.gallery_id is not None:
                query = query.where(ApiKey.gallery_id == principal.gallery_id)
            return [self._key_out(k, g) for k, g in session.execute(query).all()]

    def revoke_api_key(self, key_id: int, principal: Principal = SYSTEM) -> None:
        principal.require("admin")
        with self.sessions.begin() as session:
            key = session.get(ApiKey, key_id)
            if key is None or (principal.gallery_id is not None and key.gallery_id != principal.gallery_id):
                raise NotFoundError(f"API key {key_id} not found")
            key.revoked_at = utcnow()

    def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise AuthenticationError("missing API key: send it in the 'X-API-Key' header")
        parts = secret.split("_")
        if not secret.startswith(KEY_PREFIX) or len(parts) < 3:
            raise AuthenticationError("malformed API key")
        with self.sessions() as session:
            key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
            if key is None or not secrets.compare_digest(key.secret_hash, hash_secret(secret)):
                raise AuthenticationError("unknown API key")
            if key.revoked_at is not None:
                raise AuthenticationError("this API key was revoked")
            return Principal(key_id=key.id, scopes=frozenset(key.scopes), gallery_id=key.gallery_id)

    def has_any_api_key(self) -> bool:
        with self.sessions() as session:
            return session.scalar(select(func.count(ApiKey.id))) > 0

    # -- subjects -------------------------------------------------------------------------
    def _subject_out(self, session: Session, subject: Subject) -> SubjectOut:
        count = session.scalar(select(func.count(FaceTemplate.id)).where(FaceTemplate.subject_id == subject.id)) or 0
        return SubjectOut(
            external_id=subject.external_id,
            display_name=subject.display_name,
            attributes=subject.attributes or {},
            templates=int(count),
            created_at=subject.created_at,
            updated_at=subject.updated_at,
        )

    def create_subject(self, gallery: str, data: SubjectIn, principal: Principal = SYSTEM) -> SubjectOut:
        with self.sessions.begin() as session:
            g = self._gallery(session, gallery, principal)
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
            return self._subject_out(session, subject)

    def get_subject(self, gallery: str, external_id: str, principal: Principal = SYSTEM) -> SubjectOut:
        with self.sessions() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("recognize" if "recognize" in principal.scopes else "enroll", g)
            return self._subject_out(session, self._subject(session, g, external_id))

    def list_subjects(
        self, gallery: str, cursor: str | None = None, limit: int = 50, principal: Principal = SYSTEM
    ) -> Page:
        limit = max(1, min(limit, 500))
        with self.sessions() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("enroll", g)
            rows = list(
                session.scalars(
                    select(Subject)
                    .where(Subject.gallery_id == g.id, Subject.id > decode_cursor(cursor))
                    .order_by(Subject.id)
                    .limit(limit + 1)
                )
            )
            items = [self._subject_out(session, s) for s in rows[:limit]]
            return page_of(rows, limit, items)

    def update_subject(
        self, gallery: str, external_id: str, changes: SubjectUpdate, principal: Principal = SYSTEM
    ) -> SubjectOut:
        with self.sessions.begin() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("enroll", g)
            subject = self._subject(session, g, external_id)
            if changes.display_name is not None:
                subject.display_name = changes.display_name
            if changes.attributes is not None:
                subject.attributes = changes.attributes
            session.flush()
            return self._subject_out(session, subject)

    def delete_subject(self, gallery: str, external_id: str, principal: Principal = SYSTEM) -> int:
        """Erase a subject with its templates, crops and index entries; returns templates erased."""
        with self.sessions.begin() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("enroll", g)
            subject = self._subject(session, g, external_id)
            template_ids = list(session.scalars(select(FaceTemplate.id).where(FaceTemplate.subject_id == subject.id)))
            if template_ids:
                session.execute(delete(FaceCrop).where(FaceCrop.template_id.in_(template_ids)))
                session.execute(delete(FaceTemplate).where(FaceTemplate.id.in_(template_ids)))
            session.delete(subject)
            gallery_id = g.id
        self.search.invalidate(gallery_id)
        return len(template_ids)

    def list_faces(
        self, gallery: str, external_id: str, cursor: str | None = None, limit: int = 50, principal: Principal = SYSTEM
    ) -> Page:
        limit = max(1, min(limit, 500))
        with self.sessions() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("enroll", g)
            subject = self._subject(session, g, external_id)
            rows = list(
                session.scalars(
                    select(FaceTemplate)
                    .where(FaceTemplate.subject_id == subject.id, FaceTemplate.id > decode_cursor(cursor))
                    .order_by(FaceTemplate.id)
                    .limit(limit + 1)
                )
            )
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

    def delete_face(self, gallery: str, external_id: str, face_id: int, principal: Principal = SYSTEM) -> None:
        with self.sessions.begin() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("enroll", g)
            subject = self._subject(session, g, external_id)
            template = session.get(FaceTemplate, face_id)
            if template is None or template.subject_id != subject.id:
                raise NotFoundError(f"face {face_id} not found for subject {external_id!r}")
            session.delete(template)
            gallery_id = g.id
        self.search.invalidate(gallery_id)

    # -- thresholds -----------------------------------------------------------------------
    def _verify_threshold(self, gallery: Gallery, templates: int, far: float | None = None) -> ThresholdInfo:
        """A subject with m templates gets m chances to match: per-comparison FAR = FAR / m."""
        calibration = self.calibration_for(gallery)
        target = far or self.gallery_settings(gallery).verify_far
        per_comparison = target / max(templates, 1)
        return ThresholdInfo(
            threshold=calibration.threshold_at(per_comparison),
            target_rate=target,
            rate_kind="far_per_comparison",
            per_comparison_far=per_comparison,
            calibration=f"{calibration.name}: {calibration.source}",
            resolvable=calibration.resolvable(per_comparison),
        )

    def _identify_threshold(self, gallery: Gallery, templates: int, fpir: float | None = None) -> ThresholdInfo:
        calibration = self.calibration_for(gallery)
        target = fpir or self.gallery_settings(gallery).identify_fpir
        threshold, per_comparison = calibration.identify_threshold(target, templates)
        return ThresholdInfo(
            threshold=threshold,
            target_rate=target,
            rate_kind="fpir_per_search",
            per_comparison_far=per_comparison,
            calibration=f"{calibration.name}: {calibration.source}",
            resolvable=calibration.resolvable(per_comparison),
        )

    # -- enrollment -----------------------------------------------------------------------
    def enroll(
        self,
        gallery: str,
        external_id: str,
        photos: Iterable[PhotoInput],
        display_name: str | None = None,
        attributes: dict | None = None,
        create_subject: bool = True,
        face_index: int | None = None,
        principal: Principal = SYSTEM,
    ) -> EnrollReport:
        """Enroll photos of one subject; each photo is accepted or rejected on its own.

        A photo must hold exactly one face unless ``face_index`` picks one (0-based, in the
        detector's order); it must pass the quality check; the same bytes twice are
        skipped; a face that matches another subject is refused (or flagged, per gallery).
        Each accepted photo is committed in its own transaction, so a crash loses at most
        the photo in flight and never leaves half a template.
        """
        with self.sessions() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("enroll", g)
        engine = self.engine_for(g)
        policy = self.gallery_settings(g)
        subject_id, created = self._get_or_create_subject(g, external_id, display_name, attributes, create_subject)
        items: list[EnrollItem] = []
        for photo in photos:
            items.append(self._enroll_one(g, subject_id, external_id, photo, engine, policy, face_index))
        if any(i.status == "accepted" for i in items):
            self.search.invalidate(g.id)
        report = EnrollReport(
            subject=external_id,
            created_subject=created,
            accepted=sum(i.status == "accepted" for i in items),
            rejected=sum(i.status == "rejected" for i in items),
            skipped=sum(i.status == "skipped" for i in items),
            items=items,
        )
        self._log(
            g.id,
            "enroll",
            "accepted" if report.accepted else "rejected",
            external_id,
            details={"accepted": report.accepted, "rejected": report.rejected, "skipped": report.skipped},
        )
        return report

    def _get_or_create_subject(
        self, g: Gallery, external_id: str, display_name: str | None, attributes: dict | None, create: bool
    ) -> tuple[int, bool]:
        for _attempt in range(3):
            with self.sessions.begin() as session:
                subject = session.scalar(
                    select(Subject).where(Subject.gallery_id == g.id, Subject.external_id == external_id)
                )
                if subject is not None:
                    if display_name is not None:
                        subject.display_name = display_name
                    if attributes is not None:
                        subject.attributes = attributes
                    return subject.id, False
                if not create:
                    raise NotFoundError(f"subject {external_id!r} not found in gallery {g.name!r}")
            try:
                with self.sessions.begin() as session:
                    subject = Subject(
                        gallery_id=g.id,
                        external_id=external_id,
                        display_name=display_name or "",
                        attributes=attributes or {},
                    )
                    session.add(subject)
                    session.flush()
                    return subject.id, True
            except IntegrityError:
                continue  # created concurrently by another request: read it back
        raise ConflictError(f"could not create subject {external_id!r}; retry")

    def switch_model(
        self,
        gallery: str,
        model: str,
        photos: dict[str, list[PhotoInput]],
        detector: str | None = None,
        allow_partial: bool = False,
        principal: Principal = SYSTEM,
    ) -> dict:
        """The explicit re-enrollment job that moves a gallery to another recognition model.

        Templates of one model cannot be converted into another's, so the job takes photos
        again (``{external_id: [photos]}``), embeds them with the new model while the gallery
        keeps serving on the old one, and only then, in one transaction, replaces every
        template and rebinds the gallery. Subjects with no accepted photo block the switch
        unless ``allow_partial`` (they are then left with no template and reported).
        """
        with self.sessions() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("admin", g)
            subjects = dict(session.execute(select(Subject.external_id, Subject.id).where(Subject.gallery_id == g.id)).all())
        unknown = sorted(set(photos) - set(subjects))
        if unknown:
            raise NotFoundError(f"no such subjects in gallery {gallery!r}: {', '.join(unknown[:10])}")
        engine = self._named_engine(model, detector or g.detector)
        policy = self.gallery_settings(g)
        staged: dict[int, list[tuple[Face, str]]] = {}
        report: dict[str, list[dict]] = {}
        for external_id, subject_photos in photos.items():
            for photo in subject_photos:
                try:
                    face = engine.single_face(self._decode(photo))
                except FaceGateError as exc:
                    report.setdefault(external_id, []).append({"image": photo.name, "status": "rejected", "code": exc.code, "reason": exc.message})
                    continue
                if not face.quality.acceptable or face.quality.score < policy.min_quality:
                    report.setdefault(external_id, []).append({"image": photo.name, "status": "rejected", "code": "poor_quality", "reason": "; ".join(face.quality.reasons)})
                    continue
                staged.setdefault(subjects[external_id], []).append((face, image_sha256(photo.data)))
                report.setdefault(external_id, []).append({"image": photo.name, "status": "accepted"})
        missing = sorted(ext for ext, sid in subjects.items() if sid not in staged)
        if missing and not allow_partial:
            raise ConflictError(
                f"{len(missing)} subject(s) would be left without a template ({', '.join(missing[:10])}); "
                "supply photos for them or pass allow_partial"
            )
        with self.sessions.begin() as session:
            g = self._gallery(session, gallery, principal)
            session.execute(delete(FaceTemplate).where(FaceTemplate.gallery_id == g.id))
            for subject_id, faces in staged.items():
                unique_sources = {source: face for face, source in faces}  # same photo twice: once
                for source, face in unique_sources.items():
                    session.add(template_row(g.id, subject_id, face, source))
            previous = f"{g.model_id}@{g.model_sha256[:12]}"
            g.model_id, g.model_sha256, g.detector = engine.model_id, engine.model_sha256, detector or g.detector
            gallery_id = g.id
        self.search.invalidate(gallery_id)
        self._log(gallery_id, "switch_model", "switched", None, details={"from": previous, "to": f"{engine.model_id}@{engine.model_sha256[:12]}", "without_template": missing})
        return {"gallery": gallery, "from": previous, "to": engine.model_id, "subjects_reenrolled": len(staged),
                "subjects_without_template": missing, "photos": report}

    def _enroll_one(
        self,
        g: Gallery,
        subject_id: int,
        external_id: str,
        photo: PhotoInput,
        engine: FaceEngine,
        policy: GallerySettings,
        face_index: int | None,
    ) -> EnrollItem:
        def rejected(reason: str, code: str, **extra) -> EnrollItem:
            return EnrollItem(image=photo.name, status="rejected", reason=reason, code=code, **extra)

        try:
            image = self._decode(photo)
        except FaceGateError as exc:
            return rejected(exc.message, exc.code)
        source_hash = image_sha256(photo.data)
        with self.sessions() as session:
            duplicate = session.scalar(
                select(FaceTemplate.id).where(
                    FaceTemplate.subject_id == subject_id, FaceTemplate.source_sha256 == source_hash
                )
            )
            count = session.scalar(select(func.count(FaceTemplate.id)).where(FaceTemplate.subject_id == subject_id))
        if duplicate is not None:
            return EnrollItem(
                image=photo.name, status="skipped", reason="this photo is already enrolled", code="duplicate",
                template_id=duplicate,
            )
        if count >= policy.max_templates_per_subject:
            return rejected(
                f"subject already has {count} templates (gallery limit {policy.max_templates_per_subject})",
                "too_many_templates",
            )
        faces = engine.analyze(image)
        if not faces:
            return rejected("no face found; use a photo where the face is clearly visible", NoFaceError.code)
        background = 0
        if face_index is not None:
            if not 0 <= face_index < len(faces):
                return rejected(f"face_index {face_index} is out of range: {len(faces)} face(s) found", "bad_face_index")
            face = faces[face_index]
        else:
            foreground, background = foreground_faces(faces)
            if len(foreground) > 1:
                return rejected(
                    f"{len(foreground)} faces found; use a photo of one person or pass face_index",
                    ManyFacesError.code,
                )
            face = foreground[0]
        quality = face.quality
        if not quality.acceptable or quality.score < policy.min_quality:
            reasons = quality.reasons or [f"quality {quality.score:.2f} under the gallery minimum {policy.min_quality}"]
            return rejected("; ".join(reasons), "poor_quality", quality=quality.score)

        flagged: tuple[str, float] | None = None
        with self.sessions() as session:
            total = self._template_count(session, g.id)
            others = [h for h in self.search.search(session, g.id, g.model_id, face.template.vector, k=5)[0]
                      if h.subject_id != subject_id]
            if others:
                threshold = self._identify_threshold(g, total).threshold
                best = others[0]
                if best.score >= threshold:
                    other = session.get(Subject, best.subject_id)
                    flagged = (other.external_id if other else "?", best.score)
        if flagged and policy.reject_cross_matches:
            return rejected(
                f"this face matches another enrolled subject ({flagged[0]}, score {flagged[1]:.3f})",
                "matches_other_subject",
                matches_subject=flagged[0],
                match_score=flagged[1],
                quality=quality.score,
            )
        try:
            with self.sessions.begin() as session:
                template = template_row(g.id, subject_id, face, source_hash)
                session.add(template)
                session.flush()
                if policy.store_crops:
                    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(face.aligned, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
                    if ok:
                        session.add(FaceCrop(template_id=template.id, jpeg=jpeg.tobytes()))
                template_id = template.id
        except IntegrityError:
            return EnrollItem(image=photo.name, status="skipped", reason="this photo is already enrolled", code="duplicate")
        return EnrollItem(
            image=photo.name,
            status="accepted",
            template_id=template_id,
            quality=quality.score,
            matches_subject=flagged[0] if flagged else None,
            match_score=flagged[1] if flagged else None,
            reason="; ".join(
                part
                for part in (
                    f"flagged: matches {flagged[0]}" if flagged else "",
                    f"{background} smaller background face(s) ignored" if background else "",
                )
                if part
            ),
        )

    def import_templates(
        self,
        gallery: str,
        rows: Sequence[tuple[str, str, np.ndarray]],
        source: str = "import",
        principal: Principal = SYSTEM,
    ) -> int:
        """Bulk-load ready-made templates ``(external_id, display_name, vector)`` in one
        transaction: for migrating from another system and for benchmarks with large
        galleries. Vectors must come from the gallery's model; they are L2-normalised here."""
        from sqlalchemy import insert

        with self.sessions.begin() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("admin", g)
            existing = dict(
                session.execute(select(Subject.external_id, Subject.id).where(Subject.gallery_id == g.id)).all()
            )
            new_ids = sorted({ext for ext, _, _ in rows if ext not in existing})
            names = {ext: name for ext, name, _ in rows}
            if new_ids:
                now = utcnow()
                session.execute(
                    insert(Subject),
                    [
                        {"gallery_id": g.id, "external_id": ext, "display_name": names[ext], "attributes": {},
                         "created_at": now, "updated_at": now}
                        for ext in new_ids
                    ],
                )
                existing = dict(
                    session.execute(select(Subject.external_id, Subject.id).where(Subject.gallery_id == g.id)).all()
                )
            payload = []
            for i, (ext, _, vector) in enumerate(rows):
                v = np.asarray(vector, dtype=np.float32).ravel()
                if v.shape[0] != get_engine(g.model_id, g.detector).recognizer.dimension:
                    raise ModelMismatchError(f"row {i}: a {v.shape[0]}-d vector cannot join a {g.model_id} gallery")
                v = v / max(float(np.linalg.norm(v)), 1e-12)
                payload.append(
                    {"gallery_id": g.id, "subject_id": existing[ext], "model_id": g.model_id,
                     "model_sha256": g.model_sha256, "vector": v, "quality": 0.0,
                     "source_sha256": hashlib.sha256(f"{source}:{i}:{v[:4].tobytes().hex()}".encode()).hexdigest(),
                     "box": []}
                )
            for start in range(0, len(payload), 5000):
                session.execute(insert(FaceTemplate), payload[start : start + 5000])
            gallery_id = g.id
        self.search.invalidate(gallery_id)
        return len(rows)

    # -- recognition ----------------------------------------------------------------------
    def detect(self, photo: PhotoInput, model: str = "arcface", detector: str = "scrfd") -> list[DetectedFace]:
        engine = self._named_engine(model, detector)
        faces = engine.analyze(self._decode(photo))
        return [self._face_out(f) for f in faces]

    def verify(
        self,
        gallery: str,
        external_id: str,
        photo: PhotoInput,
        far: float | None = None,
        request_id: str = "",
        crosscheck: bool = False,
        principal: Principal = SYSTEM,
    ) -> VerifyResult:
        """1:1: is the main face of the photo this subject?

        With ``crosscheck`` the same probe is also searched 1:N: other subjects it matches
        better than the claimed one (over the same threshold) come back in ``better_matches``,
        the sign of someone presenting another person's id.
        """
        with self.sessions() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("recognize", g)
            subject = self._subject(session, g, external_id)
            rows = list(session.scalars(select(FaceTemplate).where(FaceTemplate.subject_id == subject.id)))
        if not rows:
            raise ConflictError(f"subject {external_id!r} has no enrolled face; enroll a photo first")
        engine = self.engine_for(g)
        image = self._decode(photo)
        faces = engine.analyze(image)
        if not faces:
            self._log(g.id, "verify", "no_face", external_id, request_id=request_id)
            raise NoFaceError("no face found in the photo; ask the person to face the camera")
        face = faces[main_face_index([f.detection for f in faces], *image.shape[:2])]
        for row in rows:
            if row.model_sha256 != face.template.model_sha256:
                raise ModelMismatchError("stored templates come from another model; re-enroll this subject")
        matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in rows])
        score = float((matrix @ face.template.vector).max())
        info = self._verify_threshold(g, len(rows), far)
        match = score >= info.threshold
        better = self._better_matches(g, subject.id, face, score, info.threshold) if crosscheck else []
        decision_id = self._log(
            g.id,
            "verify",
            "match" if match else "no_match",
            external_id,
            score=score,
            threshold=info.threshold,
            target_rate=info.target_rate,
            calibration=info.calibration,
            request_id=request_id,
            details={
                "faces_in_image": len(faces),
                "quality": round(face.quality.score, 3),
                **({"better_matches": [c.model_dump() for c in better]} if better else {}),
            },
            face=face,
        )
        return VerifyResult(
            decision_id=decision_id,
            subject=external_id,
            match=match,
            score=score,
            threshold=info,
            face=self._face_out(face),
            faces_in_image=len(faces),
            templates_compared=len(rows),
            better_matches=better,
        )

    def _better_matches(self, g: Gallery, claimed_subject_id: int, face: Face, claimed_score: float, threshold: float) -> list[Candidate]:
        """Other subjects the probe matches over ``threshold`` and better than the claimed one."""
        with self.sessions() as session:
            hits = self.search.search(session, g.id, g.model_id, face.template.vector[None, :], k=10)[0]
            best: dict[int, float] = {}
            for h in hits:
                if h.subject_id != claimed_subject_id and h.score >= threshold and h.score > claimed_score:
                    best[h.subject_id] = max(best.get(h.subject_id, -2.0), h.score)
            if not best:
                return []
            names = {s.id: s for s in session.scalars(select(Subject).where(Subject.id.in_(best)))}
        ranked = sorted(best.items(), key=lambda kv: -kv[1])
        return [Candidate(subject=names[i].external_id, display_name=names[i].display_name, score=sc) for i, sc in ranked if i in names]

    def identify(
        self,
        gallery: str,
        photo: PhotoInput,
        top_k: int = 5,
        fpir: float | None = None,
        request_id: str = "",
        max_faces: int = 50,
        exact: bool | None = None,
        principal: Principal = SYSTEM,
    ) -> IdentifyResult:
        """1:N for every face in the photo: a subject when the best score passes the
        gallery-size-aware threshold, otherwise ``unknown``."""
        with self.sessions() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("recognize", g)
        engine = self.engine_for(g)
        faces = engine.analyze(self._decode(photo), max_faces=max_faces)
        with self.sessions() as session:
            total = self._template_count(session, g.id)
            info = self._identify_threshold(g, total, fpir)
            queries = np.stack([f.template.vector for f in faces]) if faces else np.zeros((0, 1), np.float32)
            # Ask for more templates than subjects wanted: a subject may own several.
            hits = self.search.search(session, g.id, g.model_id, queries, k=max(top_k * 4, 10), exact=exact) if faces else []
            subject_ids = {h.subject_id for row in hits for h in row}
            names = {
                s.id: (s.external_id, s.display_name)
                for s in session.scalars(select(Subject).where(Subject.id.in_(subject_ids)))
            } if subject_ids else {}
        results: list[IdentifiedFace] = []
        for face, row in zip(faces, hits):
            best_per_subject: dict[int, float] = {}
            for h in row:
                if h.subject_id in names and h.score > best_per_subject.get(h.subject_id, -2.0):
                    best_per_subject[h.subject_id] = h.score
            ranked = sorted(best_per_subject.items(), key=lambda kv: -kv[1])[:top_k]
            candidates = [Candidate(subject=names[s][0], display_name=names[s][1], score=sc) for s, sc in ranked]
            matched = bool(candidates) and candidates[0].score >= info.threshold
            results.append(
                IdentifiedFace(
                    face=self._face_out(face),
                    decision="match" if matched else "unknown",
                    subject=candidates[0].subject if matched else None,
                    display_name=candidates[0].display_name if matched else None,
                    score=candidates[0].score if candidates else None,
                    candidates=candidates,
                )
            )
        outcome = "no_face" if not faces else ("match" if any(r.decision == "match" for r in results) else "unknown")
        decision_id = self._log(
            g.id,
            "identify",
            outcome,
            next((r.subject for r in results if r.subject), None),
            score=results[0].score if results else None,
            threshold=info.threshold,
            target_rate=info.target_rate,
            calibration=info.calibration,
            request_id=request_id,
            details={
                "faces": [{"decision": r.decision, "subject": r.subject, "score": r.score} for r in results],
                "gallery_templates": total,
            },
            face=faces[0] if faces else None,
        )
        return IdentifyResult(decision_id=decision_id, faces=results, threshold=info, gallery_templates=total)

    # -- decision log ---------------------------------------------------------------------
    def _log(
        self,
        gallery_id: int,
        kind: str,
        outcome: str,
        subject: str | None,
        score: float | None = None,
        threshold: float | None = None,
        target_rate: float | None = None,
        calibration: str = "",
        request_id: str = "",
        details: dict | None = None,
        face: Face | None = None,
    ) -> int:
        """Write one decision, with the probe face's template and image measures when there is
        one (monitoring compares them between time windows and refreshes templates from them),
        and count it in the Prometheus metrics: every decision passes here."""
        quality = brightness = face_size = None
        if face is not None:
            quality = float(face.quality.score)
            brightness = float(face.quality.measures.get("brightness", np.nan))
            face_size = float(face.detection.box[3] - face.detection.box[1])
        with self.sessions.begin() as session:
            row = Decision(
                gallery_id=gallery_id,
                kind=kind,
                outcome=outcome,
                subject_external_id=subject,
                score=score,
                threshold=threshold,
                target_rate=target_rate,
                calibration=calibration,
                request_id=request_id,
                details=details or {},
                probe=face.template.vector if face is not None else None,
                quality=quality,
                brightness=brightness,
                face_size=face_size,
            )
            session.add(row)
            session.flush()
            decision_id = row.id
        self.metrics.observe_decision(kind, outcome, score=score, quality=quality, details=details)
        return decision_id

    def list_decisions(
        self, gallery: str, cursor: str | None = None, limit: int = 50, kind: str | None = None, principal: Principal = SYSTEM
    ) -> Page:
        limit = max(1, min(limit, 500))
        with self.sessions() as session:
            g = self._gallery(session, gallery, principal)
            principal.require("admin", g)
            query = select(Decision).where(Decision.gallery_id == g.id)
            if kind:
                query = query.where(Decision.kind == kind)
            rows = newest_first(session, query, Decision.id, cursor, limit)
            items = [
                DecisionOut(
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
                for d in rows[:limit]
            ]
            return page_of(rows, limit, items)

    def readiness(self) -> dict:
        """Database reachable, schema at head, models verified: what a load balancer asks."""
        from sqlalchemy import text

        with self.db.connect() as connection:
            connection.execute(text("SELECT 1"))
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        from facegate.models.registry import verified_path

        for key in ("scrfd_500m", "arcface_mbf", "dlib_resnet", "dlib_shape5"):
            verified_path(key)
        return {"database": self.db.dialect.name, "schema_revision": revision, "models": "verified"}

    # -- monitoring (facegate.monitoring) ---------------------------------------------------
    @property
    def metrics(self) -> "FaceGateMetrics":
        """This service's Prometheus metrics, made on first use; each service has its own
        registry, so several services (tests, tools) in one process never clash."""
        from facegate.monitoring.metrics import FaceGateMetrics

        return self.__dict__.get("_metrics") or self.__dict__.setdefault("_metrics", FaceGateMetrics())

    def drift_report(
        self, gallery: str, windows: "DriftWindows", limits: "DriftLimits | None" = None, principal: Principal = SYSTEM
    ) -> "DriftReport":
        """Drift between a reference and a recent window of this gallery's decisions (admin)."""
        from facegate.monitoring.drift import gallery_drift

        return gallery_drift(self, gallery, windows, limits, principal=principal)

    def respond_to_drift(
        self, gallery: str, windows: "DriftWindows", policy: "ResponsePolicy | None" = None, apply: bool = False,
        principal: Principal = SYSTEM,
    ) -> "ResponseReport":
        """Plan (and with ``apply`` carry out) recalibration and template refresh (admin)."""
        from facegate.monitoring.response import respond

        return respond(self, gallery, windows, policy, apply=apply, principal=principal)

    def revert_ops_action(self, action_id: int, principal: Principal = SYSTEM) -> dict:
        """Undo one recorded monitoring action: remove the templates it added (restoring any it
        replaced) or restore the production calibration it replaced (admin)."""
        from facegate.monitoring.response import revert_action

        return revert_action(self, action_id, principal=principal)
