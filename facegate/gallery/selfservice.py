"""Self-service galleries: where strangers (no key, not signed in) may register, log in by face
and check a photo's quality. The one place that turns an anonymous caller into a principal,
used only by those routes, so every other route keeps refusing strangers."""

from __future__ import annotations

from facegate.errors import AuthenticationError, PermissionDeniedError
from facegate.gallery import recognition
from facegate.gallery.context import GalleryContext, find_gallery, gallery_settings
from facegate.gallery.inputs import PhotoInput
from facegate.gallery.schemas import DetectedFace
from facegate.security import SYSTEM, Principal, caller

SELF_SERVICE_SCOPES = frozenset({"enroll", "recognize"})


def self_service_principal(ctx: GalleryContext, gallery: str, principal: Principal) -> Principal:
    """``principal`` itself, unless anonymous: then, on a gallery with ``self_service`` on, a
    principal bound to that gallery (registration enrolls, login recognises); else the 401
    every route gives a caller without a key."""
    principal = caller(principal)
    if not principal.anonymous:
        return principal
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, SYSTEM)
        allowed = gallery_settings(g).self_service
        gallery_id = g.id
    if not allowed:
        raise AuthenticationError("missing API key: send it in the 'X-API-Key' header, or sign in "
                                  f"(gallery {gallery!r} does not allow self-service)")
    return Principal(key_id=None, scopes=SELF_SERVICE_SCOPES, gallery_id=gallery_id)


def photo_quality(ctx: GalleryContext, gallery: str, photo: PhotoInput, principal: Principal) -> list[DetectedFace]:
    """The faces of a photo and their quality, found by the gallery's own detector and model,
    for live camera feedback: nothing is searched and no decision is logged."""
    principal = self_service_principal(ctx, gallery, principal)
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        if not (principal.has("recognize") or principal.has("enroll")):
            raise PermissionDeniedError("checking photo quality needs the 'recognize' or 'enroll' scope")
        principal.require("enroll" if principal.has("enroll") else "recognize", g)
        model, detector = g.model_id, g.detector
    # Allowed on this gallery above; detect itself asks for 'recognize', which an enroll-only caller lacks.
    return recognition.detect(ctx, photo, model, detector, SYSTEM)
