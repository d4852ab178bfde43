"""Lockout: after N failed verifications of one identity within M minutes, refuse it until
an admin clears it. Counting starts afresh after a clear, so one clear is a real second chance.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from facegate.errors import LockedOutError, NotFoundError
from facegate.gallery.context import find_gallery
from facegate.gallery.service import GalleryService
from facegate.security import Principal
from facegate.storage.models import FailedAttempt, Gallery, Lockout, as_utc, utcnow
from facegate.workflows.alerts import AlertCenter


class LockoutOut(BaseModel):
    id: int
    identity: str
    reason: str
    locked_at: dt.datetime
    cleared_at: dt.datetime | None
    cleared_by: str | None


def _out(row: Lockout) -> LockoutOut:
    return LockoutOut(
        id=row.id, identity=row.identity, reason=row.reason, locked_at=row.locked_at,
        cleared_at=row.cleared_at, cleared_by=row.cleared_by,
    )


class LockoutGuard:
    def __init__(self, gallery_service: GalleryService, alerts: AlertCenter) -> None:
        self.gs = gallery_service
        self.alerts = alerts

    @staticmethod
    def active(session: Session, gallery: Gallery, identity: str) -> Lockout | None:
        return session.scalar(
            select(Lockout).where(
                Lockout.gallery_id == gallery.id, Lockout.identity == identity, Lockout.cleared_at.is_(None)
            )
        )

    def check(self, session: Session, gallery: Gallery, identity: str) -> None:
        """Raise :class:`LockedOutError` when the identity is locked."""
        lock = self.active(session, gallery, identity)
        if lock is not None:
            raise LockedOutError(
                f"{identity!r} is locked after repeated failed verifications (since "
                f"{as_utc(lock.locked_at).isoformat(timespec='seconds')}); an administrator must clear it"
            )

    def record_failure(self, session: Session, gallery: Gallery, identity: str, reason: str) -> bool:
        """Count one failure inside the caller's transaction; True when it locks the identity."""
        policy = self.gs.gallery_settings(gallery)
        now = utcnow()
        session.add(FailedAttempt(gallery_id=gallery.id, identity=identity, reason=reason, created_at=now))
        session.flush()
        since = now - dt.timedelta(minutes=policy.lockout_minutes)
        last_clear = session.scalar(
            select(func.max(Lockout.cleared_at)).where(Lockout.gallery_id == gallery.id, Lockout.identity == identity)
        )
        if last_clear is not None and as_utc(last_clear) > since:
            since = as_utc(last_clear)
        failures = session.scalar(
            select(func.count(FailedAttempt.id)).where(
                FailedAttempt.gallery_id == gallery.id,
                FailedAttempt.identity == identity,
                FailedAttempt.created_at > since,
            )
        ) or 0  # COUNT always answers one row; the scalar is typed Optional all the same
        if failures < policy.lockout_failures or self.active(session, gallery, identity) is not None:
            return False
        reason_text = f"{failures} failed verifications within {policy.lockout_minutes:g} minutes (last: {reason})"
        session.add(Lockout(gallery_id=gallery.id, identity=identity, reason=reason_text, locked_at=now))
        self.alerts.raise_alert(
            session, gallery, "lockout", f"{identity} locked: {reason_text}", severity="critical", subject=identity,
            details={"failures": failures, "window_minutes": policy.lockout_minutes},
        )
        return True

    # -- admin --------------------------------------------------------------------------------
    def list_lockouts(self, gallery: str, active_only: bool = True, *, principal: Principal) -> list[LockoutOut]:
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("proctor", g)
            query = select(Lockout).where(Lockout.gallery_id == g.id)
            if active_only:
                query = query.where(Lockout.cleared_at.is_(None))
            return [_out(r) for r in session.scalars(query.order_by(Lockout.id.desc()))]

    def clear(self, gallery: str, identity: str, by: str = "admin", *, principal: Principal) -> LockoutOut:
        with self.gs.ctx.sessions.begin() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("admin", g)
            lock = self.active(session, g, identity)
            if lock is None:
                raise NotFoundError(f"{identity!r} is not locked in gallery {gallery!r}")
            lock.cleared_at, lock.cleared_by = utcnow(), by or "admin"
            return _out(lock)
