"""Retention: biometric data is kept only as long as a gallery says.

Two clocks per gallery (``GallerySettings``): the probe templates stored with decisions (for
recalibration and drift) are dropped after ``probe_retention_days``, and the decisions
themselves after ``decision_retention_days``; 0 keeps them. Failed attempts older than a
lockout window are no longer evidence of anything and go after a day. The template change log
(what a search index catches up from) keeps a week: an index older than that reloads its
gallery instead (see :mod:`facegate.storage.vector_index`). Run hourly by the
server's background worker (under the ``retention`` lease, so one of several server processes
runs it, once an hour across them all) and on demand (``facegate db purge``); the freed bytes
are then flushed as after an erasure (see :mod:`facegate.gallery.erasure`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update

from facegate.gallery.context import GalleryContext, gallery_settings
from facegate.gallery.erasure import flush_freed_bytes
from facegate.storage.models import Decision, FailedAttempt, Gallery, TemplateChange, utcnow

CHANGE_LOG_DAYS = 7


def apply_retention(ctx: GalleryContext, now: dt.datetime | None = None) -> dict[str, int]:
    """Drop what every gallery's retention settings no longer allow; returns the counts."""
    now = now or utcnow()
    counts = {"probes_dropped": 0, "decisions_deleted": 0, "failed_attempts_deleted": 0, "template_changes_deleted": 0}
    with ctx.sessions.begin() as session:
        for g in session.scalars(select(Gallery)).all():
            policy = gallery_settings(g)
            if policy.decision_retention_days > 0:
                cut = now - dt.timedelta(days=policy.decision_retention_days)
                result = session.execute(delete(Decision).where(Decision.gallery_id == g.id, Decision.created_at < cut))
                counts["decisions_deleted"] += int(getattr(result, "rowcount", 0) or 0)
            if policy.probe_retention_days > 0:
                cut = now - dt.timedelta(days=policy.probe_retention_days)
                result = session.execute(update(Decision).where(
                    Decision.gallery_id == g.id, Decision.created_at < cut, Decision.probe.is_not(None)
                ).values(probe=None))
                counts["probes_dropped"] += int(getattr(result, "rowcount", 0) or 0)
            window = dt.timedelta(minutes=policy.lockout_minutes) + dt.timedelta(days=1)
            result = session.execute(delete(FailedAttempt).where(
                FailedAttempt.gallery_id == g.id, FailedAttempt.created_at < now - window
            ))
            counts["failed_attempts_deleted"] += int(getattr(result, "rowcount", 0) or 0)
        # Not biometric data (ids and versions), so not worth flushing freed bytes for.
        result = session.execute(delete(TemplateChange).where(
            (TemplateChange.created_at < now - dt.timedelta(days=CHANGE_LOG_DAYS))
            | TemplateChange.gallery_id.not_in(select(Gallery.id))
        ))
        counts["template_changes_deleted"] = int(getattr(result, "rowcount", 0) or 0)
    if any(v for k, v in counts.items() if k != "template_changes_deleted"):
        flush_freed_bytes(ctx.db)
    return counts
