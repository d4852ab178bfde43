"""FastAPI dependencies: the service, the caller's API key, uploaded photos."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, UploadFile

from facegate.errors import ImageTooLargeError
from facegate.gallery.inputs import PhotoInput
from facegate.gallery.service import GalleryService
from facegate.security import Principal


def get_service(request: Request) -> GalleryService:
    return request.app.state.service


def get_principal(request: Request, service: Annotated[GalleryService, Depends(get_service)]) -> Principal:
    secret = request.headers.get("x-api-key")
    if not secret:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
    return service.authenticate(secret)


def request_id(request: Request) -> str:
    return request.state.request_id


def upload_limit(request: Request) -> int:
    """Bytes one uploaded file may have (FACEGATE_MAX_UPLOAD_BYTES)."""
    return request.app.state.service.settings.max_upload_bytes


def read_photo(upload: UploadFile, limit: int) -> PhotoInput:
    """Read an upload (from a sync route's worker thread), refusing it past the size limit."""
    chunks, size = [], 0
    upload.file.seek(0)
    while chunk := upload.file.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise ImageTooLargeError(
                f"upload {upload.filename or ''!r} is over the limit of {limit // (1024 * 1024)} MiB "
                "(FACEGATE_MAX_UPLOAD_BYTES); send a smaller photo"
            )
        chunks.append(chunk)
    return PhotoInput(name=upload.filename or "upload", data=b"".join(chunks))


ServiceDep = Annotated[GalleryService, Depends(get_service)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
RequestIdDep = Annotated[str, Depends(request_id)]
