"""The three jobs FaceGate is bought for, built on the gallery service: exam check-in with
attendance and alerts, self-service enrollment with face login, and team access rights."""

from __future__ import annotations

from collections.abc import Callable

from facegate.gallery.service import GalleryService
from facegate.workflows.access import AccessService
from facegate.workflows.accounts import AccountService
from facegate.workflows.alerts import AlertCenter, BackgroundWorker
from facegate.workflows.exam import ExamService
from facegate.workflows.lockout import LockoutGuard

RETENTION_INTERVAL_S = 3600.0


class Workflows:
    """Every workflow over one gallery service; what the API, CLI and web pages hold."""

    def __init__(self, gallery_service: GalleryService) -> None:
        self.gallery = gallery_service
        self.alerts = AlertCenter(gallery_service)
        self.lockout = LockoutGuard(gallery_service, self.alerts)
        self.exams = ExamService(gallery_service, self.alerts, self.lockout)
        self.accounts = AccountService(gallery_service, self.alerts, self.lockout)
        self.access = AccessService(gallery_service, self.alerts)

    def background_worker(self, interval_s: float = 0.5) -> BackgroundWorker:
        """Webhook delivery and missed re-verifications, run periodically beside the server, and
        retention (hourly) and the automatic response to drift (every ``auto_respond_interval_s``).

        Every server process runs one. Delivery and the sweep claim their rows one by one, so
        two workers never act on the same alert or challenge; retention and the automatic
        response run under a lease of ``job_leases``, on one worker at a time and once per
        interval across them all."""
        from facegate.gallery.retention import apply_retention
        from facegate.monitoring.auto import auto_respond
        from facegate.storage.leases import JobLeases

        leases = JobLeases(self.gallery.ctx.sessions)
        jobs: list[Callable[[], object]] = [
            self.alerts.deliver_due, self.exams.sweep_missed,
            leases.periodic("retention", RETENTION_INTERVAL_S, lambda: apply_retention(self.gallery.ctx)),
        ]
        every = self.gallery.settings.auto_respond_interval_s
        if every > 0:
            jobs.append(leases.periodic("auto_respond", every, lambda: auto_respond(self.gallery)))
        return BackgroundWorker(jobs, interval_s=interval_s)


__all__ = ["AccessService", "AccountService", "AlertCenter", "ExamService", "LockoutGuard", "Workflows"]
