"""Operator routes: people (admin, proctor, team lead) sign in with a password and get a
session cookie; admins manage operators. Also the self-service photo-quality check used by the
enrollment, login and kiosk pages for live camera feedback."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, File, Request, Response, UploadFile

from facegate.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    OptionalPrincipalDep,
    PrincipalDep,
    ServiceDep,
    read_photo,
    same_origin,
    upload_limit,
)
from facegate.errors import AuthenticationError
from facegate.gallery import operators
from facegate.gallery.operators import LoginIn, OperatorIn, OperatorOut, OperatorSessionOut, PasswordIn
from facegate.gallery.schemas import DetectedFace
from facegate.gallery.selfservice import photo_quality
from facegate.security import CsrfError

router = APIRouter(prefix="/api/v1")


def _cookies(request: Request, response: Response, signed: operators.SignedIn) -> None:
    max_age = max(1, int((signed.session.expires_at - dt.datetime.now(dt.timezone.utc)).total_seconds()))
    secure = request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, signed.token, max_age=max_age, path="/", secure=secure, httponly=True,
                        samesite="strict")
    # Readable by the pages' script, which echoes it in the X-CSRF-Token header.
    response.set_cookie(CSRF_COOKIE, signed.csrf_token, max_age=max_age, path="/", secure=secure, httponly=False,
                        samesite="strict")


def _same_origin(request: Request) -> None:
    """A sign-in posted by another site's page is refused (login CSRF: signing a victim in as the
    attacker); clients that send no Origin (curl, scripts) are not browsers and pass."""
    if not same_origin(request.headers):
        raise CsrfError("sign-in from another site refused: the page's Origin is not this server")


@router.post("/auth/operator/login", response_model=OperatorSessionOut, tags=["operators"])
def operator_login(body: LoginIn, request: Request, response: Response, service: ServiceDep) -> OperatorSessionOut:
    """Sign in with username and password. Sets the ``fg_session`` cookie (HttpOnly, SameSite=Strict)
    and the ``fg_csrf`` cookie, whose value must come back in the ``X-CSRF-Token`` header of every
    POST, PUT, PATCH and DELETE made with the session. Five wrong passwords lock the operator for
    15 minutes (423)."""
    _same_origin(request)
    signed = operators.login(service.ctx, body.username, body.password)
    _cookies(request, response, signed)
    return signed.session


@router.post("/auth/operator/logout", status_code=204, response_model=None, tags=["operators"])
def operator_logout(request: Request, service: ServiceDep, principal: OptionalPrincipalDep) -> Response:
    """Sign out: the session is revoked on the server (the cookie stops working even if kept) and
    both cookies are cleared. Needs the X-CSRF-Token header like any other unsafe request."""
    operators.logout(service.ctx, request.cookies.get(SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    response.delete_cookie(CSRF_COOKIE, path="/", samesite="strict")
    return response


@router.get("/auth/operator/me", response_model=OperatorSessionOut, tags=["operators"])
def operator_me(request: Request, service: ServiceDep) -> OperatorSessionOut:
    """The signed-in operator (name, role, gallery, when the session ends); 401 when not signed in."""
    signed_in = operators.resolve_session(service.ctx, request.cookies.get(SESSION_COOKIE))
    if signed_in is None:
        raise AuthenticationError("not signed in: POST /api/v1/auth/operator/login first")
    return signed_in.session


@router.post("/operators", response_model=OperatorOut, status_code=201, tags=["operators"])
def create_operator(body: OperatorIn, service: ServiceDep, principal: PrincipalDep) -> OperatorOut:
    """Create an operator (admin only). Roles: admin (everything), proctor (exam sessions, alerts,
    lockouts, check-in), lead (a team's members and access checks); bind it to a gallery to keep it
    there."""
    return operators.create_operator(service.ctx, body, principal)


@router.get("/operators", response_model=list[OperatorOut], tags=["operators"])
def list_operators(service: ServiceDep, principal: PrincipalDep) -> list[OperatorOut]:
    """Every operator (admin only; a gallery-bound admin sees its gallery's)."""
    return operators.list_operators(service.ctx, principal)


@router.delete("/operators/{username}", status_code=204, response_model=None, tags=["operators"])
def delete_operator(username: str, service: ServiceDep, principal: PrincipalDep) -> Response:
    """Delete an operator and end its sessions (admin only; not yourself)."""
    operators.delete_operator(service.ctx, username, principal)
    return Response(status_code=204)


@router.put("/operators/{username}/password", status_code=204, response_model=None, tags=["operators"])
def set_operator_password(username: str, body: PasswordIn, service: ServiceDep, principal: PrincipalDep) -> Response:
    """Set an operator's password (admin only): ends all its sessions and lifts a lock."""
    operators.set_password(service.ctx, username, body.password, principal)
    return Response(status_code=204)


@router.post("/galleries/{gallery}/quality", response_model=list[DetectedFace], tags=["recognition"])
def gallery_photo_quality(
    gallery: str,
    request: Request,
    service: ServiceDep,
    principal: OptionalPrincipalDep,
    photo: Annotated[UploadFile, File(description="A camera frame or photo (JPEG or PNG).")],
) -> list[DetectedFace]:
    """The faces of a photo with their quality, as ``POST /detect`` gives them, found with the
    gallery's detector: live feedback for the enrollment, login and kiosk pages. Nothing is
    searched or logged. Open to anyone on a self-service gallery, else to a key or operator with
    'recognize' or 'enroll' on the gallery."""
    return photo_quality(service.ctx, gallery, read_photo(photo, upload_limit(request)), principal)
