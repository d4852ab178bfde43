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
        the automatic response to drift every ``auto_respond_interval_s``."""
        from facegate.gallery.retention import apply_retention
        from facegate.monitoring.auto import auto_respond, periodic

        jobs: list[Callable[[], object]] = [self.alerts.deliver_due, self.exams.sweep_missed,
                                            periodic(3600.0, lambda: apply_retention(self.gallery.ctx), name="retention")]
        every = self.gallery.settings.auto_respond_interval_s
        if every > 0:
            jobs.append(periodic(every, lambda: auto_respond(self.gallery), name="auto_respond"))
        return BackgroundWorker(jobs, interval_s=interval_s)


__all__ = ["AccessService", "AccountService", "AlertCenter", "ExamService", "LockoutGuard", "Workflows"]
