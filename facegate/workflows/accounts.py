"""Self-service enrollment and face login.

A person registers with a username, a password (argon2id) and at least three photos that
pass the quality check, after giving consent (kept with its time and text). They log in by
face alone (1:N within the gallery) or by username, password and face (three checks, two
factors). Success returns a signed JWT with an expiry; every failure counts toward the
username's lockout.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from functools import cached_property
from pathlib import Path
from typing import Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from facegate.config import Settings
from facegate.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    NoFaceError,
    NotFoundError,
)
from facegate.gallery.context import find_gallery
from facegate.gallery.liveness import Recording
from facegate.gallery.liveness_schemas import LivenessResult
from facegate.gallery.schemas import EnrollItem, IdentifiedFace
from facegate.gallery.service import GalleryService, PhotoInput
from facegate.gallery.thresholds import identify_threshold
from facegate.security import SYSTEM, Principal
from facegate.storage.models import Account, Gallery, Subject, utcnow
from facegate.storage.secret_files import read_or_create
from facegate.workflows.alerts import AlertCenter
from facegate.workflows.liveness_gate import LivenessGate
from facegate.workflows.lockout import LockoutGuard

MIN_PHOTOS = 3
MIN_PASSWORD = 10
TOKEN_ALGORITHM = "HS256"
USER_PREFIX = "user:"
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class RegistrationIn(BaseModel):
    username: str = Field(..., min_length=3, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(..., min_length=MIN_PASSWORD, max_length=1024)
    display_name: str = Field("", max_length=300)
    consent: bool = Field(..., description="The person agrees to the processing of their face data.")
    consent_text: str = Field("I agree that my face photos are used to recognise me.", max_length=4000)


class RegistrationResult(BaseModel):
    username: str
    subject: str
    consent_at: dt.datetime
    accepted_photos: int
    items: list[EnrollItem]


class LoginResult(BaseModel):
    authenticated: bool
    username: str | None = None
    method: Literal["face", "password+face"]
    token: str | None = None
    expires_at: dt.datetime | None = None
    score: float | None = None
    threshold: float | None = None
    decision_id: int | None = None
    reason: str = ""
    locked: bool = False
    liveness: LivenessResult | None = None


class TokenClaims(BaseModel):
    username: str
    gallery: str
    method: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    token_id: str


def lock_identity(username: str, source: str = "") -> str:
    """The identity a failed login of ``username`` counts toward: the account, or the account
    as tried from one source ("user:ada from key 7"), so guesses from one place lock that place."""
    return USER_PREFIX + username + (f" from {source}" if source else "")


def load_secret_key(settings: Settings) -> str:
    """The configured key, or one generated once and kept in the data folder."""
    if settings.secret_key:
        return settings.secret_key
    return read_or_create(Path(settings.data_dir) / "secret_key", lambda: secrets.token_urlsafe(48))


class AccountService:
    def __init__(self, gallery_service: GalleryService, alerts: AlertCenter, lockout: LockoutGuard) -> None:
        self.gs = gallery_service
        self.alerts = alerts
        self.lockout = lockout
        self.gate = LivenessGate(gallery_service, alerts)

    @cached_property
    def _key(self) -> str:
        """The token key, read (or created) on the first login, not at every start-up."""
        return load_secret_key(self.gs.settings)

    # -- registration -------------------------------------------------------------------------
    def register(
        self, gallery: str, data: RegistrationIn, photos: list[PhotoInput], *, principal: Principal
    ) -> RegistrationResult:
        """All or nothing: the account exists only if at least three photos were enrolled."""
        if not data.consent:
            raise InvalidRequestError("consent is required before any face data is stored")
        if len(photos) < MIN_PHOTOS:
            raise InvalidRequestError(f"send at least {MIN_PHOTOS} photos (got {len(photos)})")
        subject_id = USER_PREFIX + data.username
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("enroll", g)
            taken = session.scalar(select(Account.id).where(Account.gallery_id == g.id, Account.username == data.username))
            subject_taken = session.scalar(
                select(Subject.id).where(Subject.gallery_id == g.id, Subject.external_id == subject_id)
            )
        if taken is not None or subject_taken is not None:
            raise ConflictError(f"username {data.username!r} is taken")
        try:
            # The subject is created with its first accepted photo (nothing is left of a request
            # killed before one), and erased below when fewer than MIN_PHOTOS pass.
            report = self.gs.enroll(gallery, subject_id, photos, display_name=data.display_name,
                                    attributes={"role": "user"}, create_subject=True, principal=principal)
            if report.accepted < MIN_PHOTOS:
                reasons = "; ".join(f"{i.image}: {i.reason}" for i in report.items if i.status != "accepted")
                raise InvalidRequestError(
                    f"only {report.accepted} of {len(photos)} photos passed the checks, {MIN_PHOTOS} are needed "
                    f"({reasons}); retake the others facing the camera in good light"
                )
            consent_at = utcnow()
            with self.gs.ctx.sessions.begin() as session:
                subject = session.scalar(select(Subject).where(Subject.gallery_id == g.id, Subject.external_id == subject_id))
                if subject is None:  # erased by someone else since it was created above
                    raise NotFoundError(f"subject {subject_id!r} was deleted during the registration")
                session.add(Account(
                    gallery_id=g.id, subject_id=subject.id, username=data.username,
                    password_hash=_hasher.hash(data.password), consent_text=data.consent_text, consent_at=consent_at,
                ))
        except IntegrityError:
            self._erase(gallery, subject_id)
            raise ConflictError(f"username {data.username!r} is taken") from None
        except BaseException:
            self._erase(gallery, subject_id)  # nothing of a failed registration stays
            raise
        return RegistrationResult(username=data.username, subject=subject_id, consent_at=consent_at,
                                  accepted_photos=report.accepted, items=report.items)

    def _erase(self, gallery: str, subject_id: str) -> None:
        """Erase a failed registration's subject, if its first photo created one."""
        try:
            self.gs.delete_subject(gallery, subject_id, principal=SYSTEM)
        except NotFoundError:
            pass

    # -- login --------------------------------------------------------------------------------
    def _issue(self, gallery: str, username: str, method: str) -> tuple[str, dt.datetime]:
        now = utcnow()
        expires = now + dt.timedelta(minutes=self.gs.settings.session_token_minutes)
        claims = {"sub": username, "gal": gallery, "amr": method, "iat": now, "exp": expires, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._key, algorithm=TOKEN_ALGORITHM), expires

    def check_token(self, token: str) -> TokenClaims:
        """Validate a session token's signature and expiry."""
        try:
            c = jwt.decode(token, self._key, algorithms=[TOKEN_ALGORITHM], options={"require": ["exp", "sub", "iat"]})
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("session token expired; log in again") from None
        except jwt.InvalidTokenError:
            raise AuthenticationError("invalid session token") from None

        def ts(seconds: float) -> dt.datetime:
            return dt.datetime.fromtimestamp(seconds, dt.UTC)

        return TokenClaims(username=c["sub"], gallery=c["gal"], method=c["amr"], issued_at=ts(c["iat"]),
                           expires_at=ts(c["exp"]), token_id=c["jti"])

    def _fail(self, gallery: str, username: str | None, reason: str, decision_id: int | None, method: str,
              score: float | None = None, threshold: float | None = None,
              count_toward: str | None = None, source: str = "") -> LoginResult:
        """Record a failed login of the claimed ``username`` (or, for face alone, of the account
        ``count_toward``, kept out of the answer): a lockout failure and an alert. With a
        ``source``, the failure counts toward the lock of that username from that source only."""
        blamed = username or count_toward
        locked = False
        with self.gs.ctx.sessions.begin() as session:
            g = find_gallery(session, gallery, SYSTEM)
            if blamed:
                locked = self.lockout.record_failure(session, g, lock_identity(blamed, source), "login_failed")
            self.alerts.raise_alert(session, g, "login_failed", f"{method} login failed: {reason}",
                                    subject=USER_PREFIX + blamed if blamed else None, decision_id=decision_id,
                                    severity="info", details={"method": method})
        return LoginResult(authenticated=False, username=username, method=method, reason=reason, score=score,
                           threshold=threshold, decision_id=decision_id, locked=locked and bool(username))

    def _near_miss(self, gallery: Gallery, face: IdentifiedFace, templates: int) -> str | None:
        """The account a failed face-only login came close to, or None: the top candidate when it
        is an account and scores above the identify threshold at the gallery's
        ``login_near_miss_fpir``; strangers pass that only at that rate per attempt."""
        top = face.candidates[0] if face.candidates else None
        if top is None or not top.subject.startswith(USER_PREFIX):
            return None
        rate = self.gs.gallery_settings(gallery).login_near_miss_fpir
        near = identify_threshold(self.gs.ctx, gallery, templates, fpir=rate)
        return top.subject[len(USER_PREFIX):] if top.score >= near.threshold else None

    def _succeed(self, gallery: str, g_id: int, username: str, method: str, score: float | None,
                 threshold: float, decision_id: int) -> LoginResult:
        token, expires = self._issue(gallery, username, method)
        with self.gs.ctx.sessions.begin() as session:
            account = session.scalar(select(Account).where(Account.gallery_id == g_id, Account.username == username))
            if account is None:  # erased (with its subject) while the face was being checked
                raise AuthenticationError(f"account {username!r} no longer exists")
            account.last_login_at = utcnow()
        return LoginResult(authenticated=True, username=username, method=method, token=token, expires_at=expires,
                           score=score, threshold=threshold, decision_id=decision_id)

    def _guard(self, gallery: str, username: str, principal: Principal, source: str = "") -> Gallery:
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
            self.lockout.check(session, g, USER_PREFIX + username)
            if source:
                self.lockout.check(session, g, lock_identity(username, source))
            return g

    def login_face(self, gallery: str, photo: PhotoInput | None, request_id: str = "", *, principal: Principal,
                   recording: Recording | None = None) -> LoginResult:
        """Face alone: the main face must identify as a user with an account (after the
        recording's liveness check when the gallery's liveness is on)."""
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("recognize", g)
        gate = self.gate.run(gallery, photo, recording, None, "face login", request_id, principal)
        if gate.failed or gate.probe is None:
            live = gate.liveness
            failed = self._fail(gallery, None, f"liveness failed: {live.reason if live else ''}",
                                live.decision_id if live else None, "face")
            return failed.model_copy(update={"liveness": live})
        result = self.gs.identify(gallery, gate.probe, top_k=1, request_id=request_id, principal=principal,
                                  extra_details=gate.details)
        face = result.main_face()
        if face is None:
            raise NoFaceError("no face found in the photo; face the camera")
        if face.decision != "match" or face.subject is None or not face.subject.startswith(USER_PREFIX):
            # The answer never names the nearest account (an unknown face is unknown); the
            # failure counts toward it only for a near miss (see ``_near_miss``).
            return self._fail(gallery, None, "face not recognised", result.decision_id, "face",
                              score=face.score, threshold=result.threshold.threshold,
                              count_toward=self._near_miss(g, face, result.gallery_templates))
        username = face.subject[len(USER_PREFIX):]
        with self.gs.ctx.sessions() as session:
            self.lockout.check(session, g, USER_PREFIX + username)
        ok = self._succeed(gallery, g.id, username, "face", face.score, result.threshold.threshold, result.decision_id)
        return ok.model_copy(update={"liveness": gate.liveness})

    def login_password_face(
        self, gallery: str, username: str, password: str, photo: PhotoInput | None, request_id: str = "",
        *, principal: Principal, source: str = "", recording: Recording | None = None,
    ) -> LoginResult:
        """Two factors: the password, then the face verified 1:1 against that account.
        ``source`` (a key, an address) scopes the lockout its failures count toward."""
        method = "password+face"
        g = self._guard(gallery, username, principal, source)
        with self.gs.ctx.sessions() as session:
            account = session.scalar(select(Account).where(Account.gallery_id == g.id, Account.username == username))
        password_ok = False
        if account is not None:
            try:
                password_ok = _hasher.verify(account.password_hash, password)
            except (VerificationError, InvalidHashError):
                password_ok = False
        else:
            _hasher.hash(password)  # same cost whether or not the username exists
        if account is None or not password_ok:
            return self._fail(gallery, username, "wrong username or password", None, method, source=source)
        gate = self.gate.run(gallery, photo, recording, USER_PREFIX + username, "password+face login", request_id,
                             principal)
        if gate.failed or gate.probe is None:
            live = gate.liveness
            failed = self._fail(gallery, username, f"liveness failed: {live.reason if live else ''}",
                                live.decision_id if live else None, method, source=source)
            return failed.model_copy(update={"liveness": live})
        verify = self.gs.verify(gallery, USER_PREFIX + username, gate.probe, request_id=request_id, principal=principal,
                                extra_details=gate.details)
        if not verify.match:
            return self._fail(gallery, username, "face does not match the account", verify.decision_id, method,
                              score=verify.score, threshold=verify.threshold.threshold, source=source)
        if _hasher.check_needs_rehash(account.password_hash):
            with self.gs.ctx.sessions.begin() as session:
                stored = session.get(Account, account.id)
                if stored is not None:  # an account erased meanwhile has no hash to upgrade
                    stored.password_hash = _hasher.hash(password)
        ok = self._succeed(gallery, g.id, username, method, verify.score, verify.threshold.threshold, verify.decision_id)
        return ok.model_copy(update={"liveness": gate.liveness})
