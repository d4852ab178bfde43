"""The /api/v1 routes. Each one parses the request, calls one service method, returns its result.

Routes are plain ``def`` so FastAPI runs them in its worker threads: face analysis is CPU
work and must not block the event loop.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from facegate import __version__
from facegate.api.deps import PrincipalDep, RequestIdDep, RowId, ServiceDep, read_photo, upload_limit
from facegate.errors import InvalidRequestError
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

router = APIRouter(prefix="/api/v1")


class GalleryIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")
    model: str = Field("arcface", description="arcface (default) or dlib")
    detector: str = Field("scrfd", description="scrfd (default) or dlib")
    settings: GallerySettings = Field(default_factory=GallerySettings)


class ApiKeyIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=200)
    scopes: list[str] = Field(..., description="any of admin, enroll, recognize")
    gallery: str | None = Field(None, description="bind the key to one gallery")


# -- health ---------------------------------------------------------------------------------
@router.get("/health", tags=["health"])
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok", "version": __version__}


@router.get("/ready", tags=["health"])
def ready(service: ServiceDep) -> dict[str, Any]:
    """Readiness: database reachable at the current schema, model files verified."""
    return {"status": "ready", **service.readiness()}


# -- galleries ------------------------------------------------------------------------------
@router.post("/galleries", response_model=GalleryOut, status_code=201, tags=["galleries"])
def create_gallery(body: GalleryIn, service: ServiceDep, principal: PrincipalDep) -> GalleryOut:
    """Create a gallery bound to one recognition model and detector (admin scope); the name is 1..200
    characters of A-Z a-z 0-9 _ . -."""
    return service.create_gallery(body.name, body.model, body.detector, body.settings, principal=principal)


@router.get("/galleries", response_model=Page, tags=["galleries"])
def list_galleries(
    service: ServiceDep, principal: PrincipalDep, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> Page:
    """The galleries the key may see, a page at a time (limit 1..500, follow next_cursor)."""
    return service.list_galleries(cursor, limit, principal=principal)


@router.get("/galleries/{gallery}", response_model=GalleryOut, tags=["galleries"])
def get_gallery(gallery: str, service: ServiceDep, principal: PrincipalDep) -> GalleryOut:
    """One gallery: its model, detector, settings and size."""
    return service.get_gallery(gallery, principal=principal)


@router.patch("/galleries/{gallery}/settings", response_model=GalleryOut, tags=["galleries"])
def update_gallery_settings(
    gallery: str, changes: dict[str, Any], service: ServiceDep, principal: PrincipalDep
) -> GalleryOut:
    """Change some of a gallery's settings (admin scope): verify FAR, identify FPIR, crop storage; the rest
    stay."""
    return service.update_gallery_settings(gallery, changes, principal=principal)


@router.delete("/galleries/{gallery}", status_code=204, tags=["galleries"])
def delete_gallery(gallery: str, service: ServiceDep, principal: PrincipalDep) -> Response:
    """Delete a gallery with its subjects, templates and decisions (admin scope); cannot be undone."""
    service.delete_gallery(gallery, principal=principal)
    return Response(status_code=204)


@router.get("/galleries/{gallery}/decisions", response_model=Page, tags=["galleries"])
def list_decisions(
    gallery: str,
    service: ServiceDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    kind: str | None = None,
) -> Page:
    """The gallery's decision log (verify, identify, ...), newest first, a page at a time; filter by kind."""
    return service.list_decisions(gallery, cursor, limit, kind, principal=principal)


# -- subjects and faces ---------------------------------------------------------------------
@router.post("/galleries/{gallery}/subjects", response_model=SubjectOut, status_code=201, tags=["subjects"])
def create_subject(gallery: str, body: SubjectIn, service: ServiceDep, principal: PrincipalDep) -> SubjectOut:
    """Create a subject (a person) without photos; enroll photos afterwards."""
    return service.create_subject(gallery, body, principal=principal)


@router.get("/galleries/{gallery}/subjects", response_model=Page, tags=["subjects"])
def list_subjects(
    gallery: str,
    service: ServiceDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page:
    """The gallery's subjects, a page at a time (limit 1..500)."""
    return service.list_subjects(gallery, cursor, limit, principal=principal)


@router.get("/galleries/{gallery}/subjects/{external_id}", response_model=SubjectOut, tags=["subjects"])
def get_subject(gallery: str, external_id: str, service: ServiceDep, principal: PrincipalDep) -> SubjectOut:
    """One subject with its attributes and template count."""
    return service.get_subject(gallery, external_id, principal=principal)


@router.patch("/galleries/{gallery}/subjects/{external_id}", response_model=SubjectOut, tags=["subjects"])
def update_subject(
    gallery: str, external_id: str, body: SubjectUpdate, service: ServiceDep, principal: PrincipalDep
) -> SubjectOut:
    """Change a subject's display name or attributes; fields not sent stay."""
    return service.update_subject(gallery, external_id, body, principal=principal)


@router.delete("/galleries/{gallery}/subjects/{external_id}", tags=["subjects"])
def delete_subject(gallery: str, external_id: str, service: ServiceDep, principal: PrincipalDep) -> dict[str, Any]:
    """Delete a subject and erase every template of it (the right to erasure); returns how many were erased."""
    erased = service.delete_subject(gallery, external_id, principal=principal)
    return {"deleted": external_id, "templates_erased": erased}


@router.get("/galleries/{gallery}/subjects/{external_id}/faces", response_model=Page, tags=["faces"])
def list_faces(
    gallery: str,
    external_id: str,
    service: ServiceDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page:
    """The subject's enrolled face templates (metadata, never the vectors), a page at a time."""
    return service.list_faces(gallery, external_id, cursor, limit, principal=principal)


@router.delete("/galleries/{gallery}/subjects/{external_id}/faces/{face_id}", status_code=204, tags=["faces"])
def delete_face(gallery: str, external_id: str, face_id: RowId, service: ServiceDep, principal: PrincipalDep) -> Response:
    """Remove one enrolled template of a subject."""
    service.delete_face(gallery, external_id, face_id, principal=principal)
    return Response(status_code=204)


# -- enroll / verify / identify / detect ----------------------------------------------------
@router.post("/galleries/{gallery}/subjects/{external_id}/enroll", response_model=EnrollReport, tags=["recognition"])
def enroll(
    request: Request,
    gallery: str,
    external_id: str,
    service: ServiceDep,
    principal: PrincipalDep,
    files: Annotated[list[UploadFile], File(description="One or more photos of this person.")],
    display_name: Annotated[str | None, Form()] = None,
    attributes: Annotated[str | None, Form(description="JSON object, e.g. {\"rights\": [\"lab:enter\"]}")] = None,
    face_index: Annotated[int | None, Form(description="Which face to use when a photo holds several.")] = None,
    create: Annotated[bool, Form(description="Create the subject if it does not exist.")] = True,
) -> EnrollReport:
    """Enroll one or more photos of a subject (created unless create=false): each photo is checked (one
    face, quality, not a duplicate) and accepted or rejected with a reason. Each photo is limited to
    FACEGATE_MAX_UPLOAD_BYTES (413 past it)."""
    try:
        attrs = json.loads(attributes) if attributes else None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(f"attributes must be a JSON object: {exc}") from None
    if attrs is not None and not isinstance(attrs, dict):
        raise InvalidRequestError("attributes must be a JSON object")
    photos = [read_photo(f, upload_limit(request)) for f in files]
    return service.enroll(
        gallery, external_id, photos, display_name=display_name, attributes=attrs,
        create_subject=create, face_index=face_index, principal=principal,
    )


@router.post("/galleries/{gallery}/subjects/{external_id}/verify", response_model=VerifyResult, tags=["recognition"])
def verify(
    request: Request,
    gallery: str,
    external_id: str,
    service: ServiceDep,
    principal: PrincipalDep,
    rid: RequestIdDep,
    file: Annotated[UploadFile, File(description="A live photo of the person.")],
    far: Annotated[float | None, Form(gt=0, le=0.1)] = None,
) -> VerifyResult:
    """1:1 verification: is the photo this subject? Score against the threshold at the gallery's FAR (or
    ``far``, in (0, 0.1]). The photo is limited to FACEGATE_MAX_UPLOAD_BYTES."""
    return service.verify(gallery, external_id, read_photo(file, upload_limit(request)), far=far, request_id=rid, principal=principal)


@router.post("/galleries/{gallery}/identify", response_model=IdentifyResult, tags=["recognition"])
def identify(
    request: Request,
    gallery: str,
    service: ServiceDep,
    principal: PrincipalDep,
    rid: RequestIdDep,
    file: Annotated[UploadFile, File()],
    top_k: Annotated[int, Form(ge=1, le=50)] = 5,
    fpir: Annotated[float | None, Form(gt=0, le=0.1)] = None,
) -> IdentifyResult:
    """1:N identification: who in the gallery is this? Up to ``top_k`` (1..50) candidates over the threshold
    at the gallery's FPIR (or ``fpir``, in (0, 0.1]). The photo is limited to FACEGATE_MAX_UPLOAD_BYTES."""
    return service.identify(
        gallery, read_photo(file, upload_limit(request)), top_k=top_k, fpir=fpir, request_id=rid, principal=principal
    )


@router.post("/galleries/{gallery}/switch-model", tags=["galleries"])
def switch_model(
    request: Request,
    gallery: str,
    service: ServiceDep,
    principal: PrincipalDep,
    model: Annotated[str, Form(description="The model to move to: arcface or dlib.")],
    files: Annotated[list[UploadFile], File(description="Photos named <external_id>/<file>, every subject's.")],
    detector: Annotated[str | None, Form()] = None,
    allow_partial: Annotated[bool, Form(description="Switch even if some subjects get no template.")] = False,
) -> dict[str, Any]:
    """The explicit re-enrollment job: templates cannot be converted between models, so every
    subject's photos are embedded again; the gallery switches in one transaction or not at all."""
    photos: dict[str, list] = {}
    for upload in files:
        photo = read_photo(upload, upload_limit(request))
        subject, slash, _ = photo.name.partition("/")
        if not slash or not subject:
            raise InvalidRequestError(f"name each photo <external_id>/<file>; got {photo.name!r}")
        photos.setdefault(subject, []).append(photo)
    return service.switch_model(gallery, model, photos, detector=detector, allow_partial=allow_partial, principal=principal)


@router.post("/detect", response_model=list[DetectedFace], tags=["recognition"])
def detect(
    request: Request,
    service: ServiceDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File()],
    detector: Annotated[str, Form()] = "scrfd",
) -> list[DetectedFace]:
    """Find every face in a photo: box, score, 5 landmarks and quality. Nothing is stored."""
    return service.detect(read_photo(file, upload_limit(request)), detector=detector, principal=principal)


# -- API keys -------------------------------------------------------------------------------
@router.post("/keys", response_model=ApiKeyCreated, status_code=201, tags=["keys"])
def create_key(body: ApiKeyIn, service: ServiceDep, principal: PrincipalDep) -> ApiKeyCreated:
    """Create an API key (admin scope) with scopes admin, enroll and/or recognize, optionally bound to one
    gallery; the secret is in this answer only, the server keeps its hash."""
    return service.create_api_key(body.name, body.scopes, body.gallery, principal=principal)


@router.get("/keys", response_model=list[ApiKeyOut], tags=["keys"])
def list_keys(service: ServiceDep, principal: PrincipalDep) -> list[ApiKeyOut]:
    """Every API key (admin scope): prefix, scopes, gallery, revoked or not; never the secrets."""
    return service.list_api_keys(principal=principal)


@router.delete("/keys/{key_id}", status_code=204, tags=["keys"])
def revoke_key(key_id: RowId, service: ServiceDep, principal: PrincipalDep) -> Response:
    """Revoke an API key (admin scope); it is refused from then on."""
    service.revoke_api_key(key_id, principal=principal)
    return Response(status_code=204)
