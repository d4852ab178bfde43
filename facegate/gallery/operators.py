"""Operator accounts: the people who sign in to the admin pages (admin, proctor, team lead).

Machines keep using API keys; people get a password (argon2id) and a server-side session: a
random token whose SHA-256 is stored with an expiry and a CSRF token, so a session can be
revoked at once (logout, password change, deleted operator) and no signing key is needed.
Five wrong passwords in a row lock the account for 15 minutes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facegate.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    LockedOutError,
    NotFoundError,
    PermissionDeniedError,
)
from facegate.gallery.context import GalleryContext, find_gallery
from facegate.security import ROLE_SCOPES, Principal, authorize
from facegate.storage.models import Gallery, Operator, OperatorSession, as_utc, utcnow

MIN_PASSWORD = 10  # the same rules as self-service accounts (facegate.workflows.accounts)
MAX_PASSWORD = 1024
MAX_FAILURES = 5
LOCK_MINUTES = 15
FIRST_ADMIN = "admin"
Role = Literal["admin", "proctor", "lead"]
PASSWORD_RULES = f"{MIN_PASSWORD} to {MAX_PASSWORD} characters; stored only as an argon2id hash."
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))  # unknown usernames cost what known ones do


class OperatorIn(BaseModel):
    username: str = Field(..., min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$",
                          description="Sign-in name: letters, digits and _ . @ -")
    password: str = Field(..., min_length=MIN_PASSWORD, max_length=MAX_PASSWORD, description=PASSWORD_RULES)
    role: Role = Field(..., description="admin: everything; proctor: exams, alerts, lockouts, check-in; "
                       "lead: a team's members and access checks.")
    gallery: str | None = Field(None, description="Bind the operator to one gallery (required for a lead "
                                "in practice; an unbound operator sees every gallery).")
    display_name: str = Field("", max_length=300)


class PasswordIn(BaseModel):
    password: str = Field(..., min_length=MIN_PASSWORD, max_length=MAX_PASSWORD, description=PASSWORD_RULES)


class LoginIn(BaseModel):
    username: str = Field(..., min_length=1, max_length=100)
    password: str = Field(..., min_length=1, max_length=MAX_PASSWORD, description=PASSWORD_RULES)


class OperatorOut(BaseModel):
    username: str
    role: Role
    gallery: str | None
    display_name: str
    created_at: dt.datetime
    last_login_at: dt.datetime | None
    locked: bool = Field(False, description="Locked after too many wrong passwords (for a while).")


class OperatorSessionOut(BaseModel):
    username: str
    role: Role
    gallery: str | None
    display_name: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class SignedIn:
    """A new session: the token and CSRF token go to the browser (as cookies) exactly once."""

    token: str
    csrf_token: str
    session: OperatorSessionOut


@dataclass(frozen=True)
class ResolvedSession:
    principal: Principal
    csrf_token: str
    session: OperatorSessionOut


def _token_hash(token: str) -> str:
    """Session tokens are 256-bit random, so a plain SHA-256 is a sound one-way store."""
    return hashlib.sha256(token.encode()).hexdigest()


def _gallery_name(session: Session, gallery_id: int | None) -> str | None:
    return session.scalar(select(Gallery.name).where(Gallery.id == gallery_id)) if gallery_id is not None else None


def _out(session: Session, op: Operator) -> OperatorOut:
    locked = op.locked_until is not None and as_utc(op.locked_until) > utcnow()
    return OperatorOut(username=op.username, role=op.role, gallery=_gallery_name(session, op.gallery_id),
                       display_name=op.display_name, created_at=as_utc(op.created_at),
                       last_login_at=as_utc(op.last_login_at), locked=locked)


def principal_of(op: Operator) -> Principal:
    return Principal(key_id=None, scopes=ROLE_SCOPES[op.role], gallery_id=op.gallery_id, operator=op.username)


def _find(session: Session, username: str, principal: Principal) -> Operator:
    op = session.scalar(select(Operator).where(Operator.username == username))
    if op is None or (principal.gallery_id is not None and op.gallery_id != principal.gallery_id):
        raise NotFoundError(f"operator {username!r} not found")
    return op


# -- management (admins) ---------------------------------------------------------------------
def create_operator(ctx: GalleryContext, data: OperatorIn, principal: Principal) -> OperatorOut:
    authorize(principal, "admin")
    with ctx.sessions.begin() as session:
        gallery = find_gallery(session, data.gallery, principal) if data.gallery else None
        if principal.gallery_id is not None and gallery is None:
            raise PermissionDeniedError("a gallery-bound admin can only create operators of its own gallery")
        op = Operator(username=data.username, password_hash=_hasher.hash(data.password), role=data.role,
                      gallery_id=gallery.id if gallery else None, display_name=data.display_name,
                      failed_logins=0)
        session.add(op)
        try:
            session.flush()
        except IntegrityError:
            raise ConflictError(f"operator {data.username!r} exists") from None
        return _out(session, op)


def list_operators(ctx: GalleryContext, principal: Principal) -> list[OperatorOut]:
    authorize(principal, "admin")
    with ctx.sessions() as session:
        query = select(Operator).order_by(Operator.username)
        if principal.gallery_id is not None:
            query = query.where(Operator.gallery_id == principal.gallery_id)
        return [_out(session, op) for op in session.scalars(query)]


def delete_operator(ctx: GalleryContext, username: str, principal: Principal) -> None:
    authorize(principal, "admin")
    if principal.operator == username:
        raise PermissionDeniedError("you cannot delete the operator you are signed in as")
    with ctx.sessions.begin() as session:
        op = _find(session, username, principal)
        session.execute(delete(OperatorSession).where(OperatorSession.operator_id == op.id))
        session.delete(op)


def set_password(ctx: GalleryContext, username: str, password: str, principal: Principal) -> None:
    """A new password ends every session of the operator and lifts a lock."""
    authorize(principal, "admin")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:  # the same rules on every path (CLI included)
        raise InvalidRequestError(f"the password must be {PASSWORD_RULES}")
    with ctx.sessions.begin() as session:
        op = _find(session, username, principal)
        op.password_hash = _hasher.hash(password)
        op.failed_logins, op.locked_until = 0, None
        session.execute(update(OperatorSession).where(OperatorSession.operator_id == op.id).values(revoked=True))


def has_any_operator(ctx: GalleryContext) -> bool:
    with ctx.sessions() as session:
        return int(session.scalar(select(func.count(Operator.id))) or 0) > 0


def ensure_first_admin(ctx: GalleryContext) -> str | None:
    """On a server's first start: an ``admin`` operator with a random password (returned, to be
    shown once), or None when any operator exists."""
    if has_any_operator(ctx):
        return None
    password = secrets.token_urlsafe(12)
    with ctx.sessions.begin() as session:
        session.add(Operator(username=FIRST_ADMIN, password_hash=_hasher.hash(password), role="admin",
                             display_name="First admin", failed_logins=0))
    return password


# -- signing in ------------------------------------------------------------------------------
def login(ctx: GalleryContext, username: str, password: str, minutes: float | None = None) -> SignedIn:
    """Check the password and open a session; wrong passwords count toward a temporary lock."""
    now = utcnow()
    with ctx.sessions.begin() as session:
        op = session.scalar(select(Operator).where(Operator.username == username))
        if op is None:
            _verify(_DUMMY_HASH, password)
            raise AuthenticationError("wrong username or password")
        if op.locked_until is not None and as_utc(op.locked_until) > now:
            raise LockedOutError(f"too many wrong passwords; try again after {as_utc(op.locked_until):%H:%M} UTC "
                                 "or ask an admin to set a new password")
        if not _verify(op.password_hash, password):
            op.failed_logins = (op.failed_logins or 0) + 1
            if op.failed_logins >= MAX_FAILURES:
                op.failed_logins, op.locked_until = 0, now + dt.timedelta(minutes=LOCK_MINUTES)
            failed = AuthenticationError("wrong username or password")
        else:
            failed = None
            if _hasher.check_needs_rehash(op.password_hash):
                op.password_hash = _hasher.hash(password)
            op.failed_logins, op.locked_until, op.last_login_at = 0, None, now
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            expires = now + dt.timedelta(minutes=minutes or ctx.settings.operator_session_minutes)
            session.execute(delete(OperatorSession).where(OperatorSession.operator_id == op.id,
                                                          OperatorSession.expires_at < now))
            session.add(OperatorSession(token_hash=_token_hash(token), operator_id=op.id, csrf_token=csrf,
                                        created_at=now, expires_at=expires, revoked=False))
            signed = SignedIn(token=token, csrf_token=csrf, session=_session_out(session, op, expires))
    if failed is not None:  # raised after the commit, so the failure is counted
        raise failed
    return signed


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _session_out(session: Session, op: Operator, expires: dt.datetime) -> OperatorSessionOut:
    return OperatorSessionOut(username=op.username, role=op.role, gallery=_gallery_name(session, op.gallery_id),
                              display_name=op.display_name, expires_at=as_utc(expires))


def resolve_session(ctx: GalleryContext, token: str | None) -> ResolvedSession | None:
    """The signed-in operator of a session token, or None (unknown, expired or revoked)."""
    if not token:
        return None
    with ctx.sessions() as session:
        row = session.scalar(select(OperatorSession).where(OperatorSession.token_hash == _token_hash(token)))
        if row is None or row.revoked or as_utc(row.expires_at) <= utcnow():
            return None
        op = session.get(Operator, row.operator_id)
        if op is None:
            return None
        return ResolvedSession(principal=principal_of(op), csrf_token=row.csrf_token,
                               session=_session_out(session, op, row.expires_at))


def logout(ctx: GalleryContext, token: str | None) -> bool:
    """Revoke the session of this token; False when there was none to revoke."""
    if not token:
        return False
    with ctx.sessions.begin() as session:
        result = session.execute(update(OperatorSession).where(
            OperatorSession.token_hash == _token_hash(token), OperatorSession.revoked.is_(False)).values(revoked=True))
        return bool(getattr(result, "rowcount", 0))
