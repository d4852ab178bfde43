"""FastAPI dependencies: the service, the caller (API key or operator session), uploaded photos."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, UploadFile, WebSocket
from fastapi import Path as PathParam

from facegate.errors import AuthenticationError, ImageTooLargeError
from facegate.gallery import operators
from facegate.gallery.inputs import PhotoInput
from facegate.gallery.selfservice import self_service_principal
from facegate.gallery.service import GalleryService
from facegate.security import ANONYMOUS, CsrfError, Principal

SESSION_COOKIE = "fg_session"
CSRF_COOKIE = "fg_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


# The dependencies that do no I/O are ``async``: FastAPI runs a sync one on a worker thread,
# and each such hop cost about a millisecond of a request on a busy 2-core machine.
async def get_service(request: Request) -> GalleryService:
    return request.app.state.service


def api_key_of(headers) -> str | None:
    """The API key a request presents: the X-API-Key header, else an Authorization bearer token."""
    secret = headers.get("x-api-key")
    if not secret:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
    return secret


def optional_principal(request: Request, service: Annotated[GalleryService, Depends(get_service)]) -> Principal:
    """The caller: an API key (header) first, then a signed-in operator's session cookie, else
    :data:`ANONYMOUS`. A cookie alone never authorises an unsafe method: it needs the session's
    CSRF token in the X-CSRF-Token header (another site's form can send the cookie, not the header)."""
    secret = api_key_of(request.headers)
    if secret:
        return service.authenticate(secret)
    signed_in = operators.resolve_session(service.ctx, request.cookies.get(SESSION_COOKIE))
    if signed_in is None:
        return ANONYMOUS
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), signed_in.csrf_token.encode()):
            raise CsrfError("missing or wrong X-CSRF-Token header: send the value of the fg_csrf cookie")
    return signed_in.principal


async def get_principal(principal: Annotated[Principal, Depends(optional_principal)]) -> Principal:
    """The caller, refused with a 401 when nobody is: every route but the self-service ones."""
    if principal.anonymous:
        raise AuthenticationError("missing API key: send it in the 'X-API-Key' header, or sign in")
    return principal


def self_service_caller(
    gallery: str, service: Annotated[GalleryService, Depends(get_service)],
    principal: Annotated[Principal, Depends(optional_principal)],
) -> Principal:
    """The caller of a self-service route (register, face login, photo quality): a stranger is
    let in only on a gallery with ``self_service`` on."""
    return self_service_principal(service.ctx, gallery, principal)


def same_origin(headers) -> bool:
    """The page making a browser request is on this server: its Origin (when sent; scripts and
    curl send none) names the Host, or the X-Forwarded-Host a reverse proxy passes on (a page
    cannot set that header on a cross-site request without a CORS preflight this server refuses)."""
    origin = headers.get("origin")
    if origin is None:
        return True
    hosts = {headers.get("host", "").lower(), headers.get("x-forwarded-host", "").split(",")[0].strip().lower()}
    return urlsplit(origin).netloc.lower() in hosts - {""}


def websocket_principal(websocket: WebSocket, service: GalleryService) -> Principal:
    """A WebSocket's caller: an API key (header or ``api_key`` query parameter), else the session
    cookie, refused when the page opening it is on another site (cross-site WebSocket hijacking:
    browsers send cookies with a cross-site handshake, and CORS does not apply)."""
    secret = api_key_of(websocket.headers) or websocket.query_params.get("api_key")
    if secret:
        return service.authenticate(secret)
    signed_in = operators.resolve_session(service.ctx, websocket.cookies.get(SESSION_COOKIE))
    if signed_in is None:
        return service.authenticate(None)  # the usual 401 for a missing key
    if not same_origin(websocket.headers):
        raise CsrfError("cross-site WebSocket refused: the page's Origin is not this server")
    return signed_in.principal


async def request_id(request: Request) -> str:
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


INT64_MAX = 2**63 - 1
# A database row id in a path: an integer the database can hold (a larger one is a 422, not a 500).
RowId = Annotated[int, PathParam(ge=1, le=INT64_MAX)]

ServiceDep = Annotated[GalleryService, Depends(get_service)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
OptionalPrincipalDep = Annotated[Principal, Depends(optional_principal)]
SelfServiceDep = Annotated[Principal, Depends(self_service_caller)]
RequestIdDep = Annotated[str, Depends(request_id)]
