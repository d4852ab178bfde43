"""API keys: created (the secret shown once), listed, revoked, and turned back into the
:class:`~facegate.security.Principal` of the caller presenting one."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sqlalchemy import func, select

from facegate.errors import AuthenticationError, InvalidRequestError, NotFoundError, PermissionDeniedError
from facegate.gallery.context import GalleryContext, find_gallery
from facegate.gallery.schemas import ApiKeyCreated, ApiKeyOut
from facegate.security import KEY_PREFIX, SCOPES, Principal, authorize, hash_secret
from facegate.storage.models import ApiKey, Gallery, utcnow


def key_out(key: ApiKey, gallery: Gallery | None) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        prefix=key.prefix,
        name=key.name,
        scopes=list(key.scopes),
        gallery=gallery.name if gallery else None,
        created_at=key.created_at,
        revoked=key.revoked_at is not None,
    )


def create_api_key(
    ctx: GalleryContext, name: str, scopes: Sequence[str], gallery: str | None, principal: Principal
) -> ApiKeyCreated:
    authorize(principal, "admin")
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise InvalidRequestError(f"scopes must be some of {', '.join(SCOPES)}; got {sorted(scopes)}")
    prefix = secrets.token_hex(4)
    secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    with ctx.sessions.begin() as session:
        gallery_row = find_gallery(session, gallery, principal) if gallery else None
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
        return ApiKeyCreated(**key_out(key, gallery_row).model_dump(), secret=secret)


def list_api_keys(ctx: GalleryContext, principal: Principal) -> list[ApiKeyOut]:
    authorize(principal, "admin")
    with ctx.sessions() as session:
        query = select(ApiKey, Gallery).outerjoin(Gallery, ApiKey.gallery_id == Gallery.id).order_by(ApiKey.id)
        if principal.gallery_id is not None:
            query = query.where(ApiKey.gallery_id == principal.gallery_id)
        return [key_out(k, g) for k, g in session.execute(query).all()]


def revoke_api_key(ctx: GalleryContext, key_id: int, principal: Principal) -> None:
    authorize(principal, "admin")
    with ctx.sessions.begin() as session:
        key = session.get(ApiKey, key_id)
        if key is None or (principal.gallery_id is not None and key.gallery_id != principal.gallery_id):
            raise NotFoundError(f"API key {key_id} not found")
        key.revoked_at = utcnow()


def authenticate(ctx: GalleryContext, secret: str | None) -> Principal:
    """The principal of a presented key; missing, malformed, unknown and revoked keys are 401s."""
    if not secret:
        raise AuthenticationError("missing API key: send it in the 'X-API-Key' header")
    parts = secret.split("_")
    if not secret.startswith(KEY_PREFIX) or len(parts) < 3:
        raise AuthenticationError("malformed API key")
    with ctx.sessions() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
        if key is None or not secrets.compare_digest(key.secret_hash, hash_secret(secret)):
            raise AuthenticationError("unknown API key")
        if key.revoked_at is not None:
            raise AuthenticationError("this API key was revoked")
        return Principal(key_id=key.id, scopes=frozenset(key.scopes), gallery_id=key.gallery_id)


def has_any_api_key(ctx: GalleryContext) -> bool:
    with ctx.sessions() as session:
        return int(session.scalar(select(func.count(ApiKey.id))) or 0) > 0
