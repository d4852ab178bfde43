"""The caller of every service method: an API key's scopes and gallery, or the system itself.

No method has a default principal: a caller that forgets to say who it is gets an error, not
admin rights (fail-closed). Internal jobs (background workers, the CLI on the local database)
pass :data:`SYSTEM` explicitly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from facegate.errors import NotFoundError, PermissionDeniedError
from facegate.storage.models import Gallery

SCOPES = ("admin", "enroll", "recognize")
KEY_PREFIX = "fg_"


def hash_secret(secret: str) -> str:
    """API secrets are 256-bit random tokens, so a plain SHA-256 is a sound one-way store."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
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
