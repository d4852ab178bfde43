"""The automatic response, run by the server's background worker: every
``auto_respond_interval_s`` each gallery's recent decisions are compared with its reference
window and, when drift or a rise in rejections passes the limits, the response is applied
(a new calibration version registered, not promoted; verified probes added as templates).

Every action is recorded in ``ops_actions`` and can be reverted. After an action a gallery
is left alone for ``auto_respond_cooldown_s``, so lasting drift does not register a new
calibration version every interval. With several server processes the pass runs under the
``auto_respond`` lease (:mod:`facegate.storage.leases`, scheduled by
``Workflows.background_worker``): one process checks the cooldown and acts, once per interval.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Callable

from sqlalchemy import func, select

from facegate.gallery.service import GalleryService
from facegate.monitoring.drift import DriftWindows
from facegate.monitoring.response import ResponsePolicy, ResponseReport, respond
from facegate.security import SYSTEM
from facegate.storage.models import Gallery, OpsAction, as_utc, utcnow

log = logging.getLogger(__name__)


def _last_action_at(service: GalleryService, gallery_id: int) -> dt.datetime | None:
    with service.ctx.sessions() as session:
        last = session.scalar(select(func.max(OpsAction.created_at)).where(OpsAction.gallery_id == gallery_id))
    return as_utc(last)


def auto_respond(
    service: GalleryService,
    windows: DriftWindows | None = None,
    policy: ResponsePolicy | None = None,
    now: dt.datetime | None = None,
) -> dict[str, ResponseReport | str]:
    """One pass over every gallery: the report of each gallery checked, or why it was skipped."""
    now = now or utcnow()
    cooldown = dt.timedelta(seconds=service.settings.auto_respond_cooldown_s)
    with service.ctx.sessions() as session:
        galleries = list(session.execute(select(Gallery.id, Gallery.name).order_by(Gallery.id)).all())
    results: dict[str, ResponseReport | str] = {}
    for gallery_id, name in galleries:
        last = _last_action_at(service, gallery_id)
        if last is not None and now - last < cooldown:
            results[name] = f"cooling down: last action {last.isoformat(timespec='seconds')}"
            continue
        try:
            report = respond(service, name, windows or DriftWindows(), policy or ResponsePolicy(), apply=True, principal=SYSTEM)
        except Exception as exc:  # one gallery's failure must not stop the others
            log.exception("automatic response for gallery %s failed", name)
            results[name] = f"failed: {exc}"
            continue
        if report.actions:
            log.warning("automatic response for gallery %s: %s; actions %s", name, "; ".join(report.reasons),
                        [a.id for a in report.actions])
        results[name] = report
    return results


def periodic(interval_s: float, job: Callable[[], object], name: str | None = None) -> Callable[[], None]:
    """``job`` run at most once per ``interval_s`` when called from a fast loop, timed in this
    process alone; a job that several processes schedule uses ``JobLeases.periodic`` instead."""
    state = {"next": time.monotonic() + interval_s}

    def tick() -> None:
        if time.monotonic() >= state["next"]:
            state["next"] = time.monotonic() + interval_s
            job()

    tick.__name__ = name or str(getattr(job, "__name__", "periodic"))
    return tick
