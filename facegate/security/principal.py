"""The caller of every service method: an API key's scopes and gallery, or the system itself.

No method has a default principal: a caller that forgets to say who it is gets an error, not
admin rights (fail-closed). Internal jobs (background workers, the CLI on the local database)
pass :data:`SYSTEM` explicitly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from facegate.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from facegate.storage.models import Gallery

SCOPES = ("admin", "enroll", "recognize", "proctor")
KEY_PREFIX = "fg_"
# What an operator's role may do: an admin everything, a proctor runs exams (and recognises,
# to check people in), a team lead manages and checks its team.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin"}),
    "proctor": frozenset({"proctor", "recognize"}),
    "lead": frozenset({"enroll", "recognize"}),
}
# A scope that also grants others: a proctor checks people in, which is recognition.
_IMPLIED = {"proctor": frozenset({"recognize"})}


class CsrfError(PermissionDeniedError):
    """A cookie-authenticated unsafe request without the session's CSRF token (403)."""

    code = "csrf_failed"


def hash_secret(secret: str) -> str:
    """API secrets are 256-bit random tokens, so a plain SHA-256 is a sound one-way store."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key's (or a signed-in operator's) scopes and, if it is bound to
    one, its gallery. ``operator`` names the person signed in, for the record."""

    key_id: int | None
    scopes: frozenset[str]
    gallery_id: int | None
    operator: str | None = None

    @property
    def anonymous(self) -> bool:
        return not self.scopes and self.key_id is None and self.operator is None

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or any(scope == s or scope in _IMPLIED.get(s, ()) for s in self.scopes)

    def require(self, scope: str, gallery: Gallery | None = None) -> None:
        if self.anonymous:  # nobody signed in and no key: the same 401 as a missing key
            raise AuthenticationError("missing API key: send it in the 'X-API-Key' header, or sign in")
        if not self.has(scope):
            who = f"operator {self.operator!r}" if self.operator else "this API key"
            raise PermissionDeniedError(f"{who} lacks the '{scope}' scope")
        if gallery is not None and self.gallery_id is not None and gallery.id != self.gallery_id:
            raise NotFoundError(f"gallery {gallery.name!r} not found")


SYSTEM = Principal(key_id=None, scopes=frozenset({"admin"}), gallery_id=None)
# No key, no session: may do only what a route explicitly allows strangers (self-service pages).
ANONYMOUS = Principal(key_id=None, scopes=frozenset(), gallery_id=None)


def caller(principal: object) -> Principal:
    """The caller, checked: anything that is not a Principal (None, a forgotten argument passed
    along) is refused rather than trusted."""
    if not isinstance(principal, Principal):
        raise PermissionDeniedError("no caller identity: every call must say who makes it")
    return principal


def authorize(principal: object, scope: str, gallery: Gallery | None = None) -> Principal:
    """``principal`` holds ``scope`` (for ``gallery``)."""
    checked = caller(principal)
    checked.require(scope, gallery)
    return checked
