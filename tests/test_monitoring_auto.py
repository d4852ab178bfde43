"""The automatic response as the server's worker runs it: a gallery whose recent probes drift
(darkened, blurred) gets a recorded, reversible recalibration without anyone asking; a second
pass inside the cooldown leaves it alone."""

from __future__ import annotations

import time

from facegate.monitoring.response import revert_action
from facegate.security import SYSTEM
from tests.conftest import datasets_dir, degrade, enroll_lfw_people, verify_lfw_probes

PEOPLE = 40


def test_periodic_runs_at_most_once_per_interval():
    from facegate.monitoring.auto import periodic

    calls = []
    tick = periodic(0.3, lambda: calls.append(1))
    for _ in range(5):
        tick()
    assert calls == []
    time.sleep(0.35)
    tick()
    tick()
    assert calls == [1]


def test_auto_respond_acts_on_drift_then_cools_down(tmp_path):
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService
    from facegate.monitoring.auto import auto_respond
    from facegate.monitoring.drift import DriftWindows
    from facegate.monitoring.response import ResponsePolicy
    from facegate.workflows import Workflows

    datasets_dir("lfw")  # skip, saying why, without the shared data
    service = GalleryService(Settings(data_dir=tmp_path / "data", auto_respond_interval_s=3600), migrate=True)
    try:
        service.create_gallery("site", principal=SYSTEM)
        service.create_gallery("quiet", principal=SYSTEM)  # no decisions: checked, nothing to do
        enrolled = enroll_lfw_people(service, "site", PEOPLE)
        verify_lfw_probes(service, "site", enrolled)
        verify_lfw_probes(service, "site", enrolled, transform=degrade)
        windows = DriftWindows(reference_last=PEOPLE, recent_last=PEOPLE)
        policy = ResponsePolicy(min_impostors=200, bootstrap=50)
        first = auto_respond(service, windows, policy)
        report = first["site"]
        assert report.triggered and report.applied, report.reasons
        assert "brightness" in report.drift.drifted_features
        kinds = [a.kind for a in report.actions]
        print("automatic response:", report.reasons, kinds)
        assert kinds, report
        assert not first["quiet"].triggered
        # Inside the cooldown the gallery is left alone; the actions stay recorded and reversible.
        second = auto_respond(service, windows, policy)
        assert isinstance(second["site"], str) and second["site"].startswith("cooling down")
        from facegate.monitoring.response import list_actions

        recorded = list_actions(service, "site", principal=SYSTEM)
        assert [a.id for a in recorded] == sorted((a.id for a in report.actions), reverse=True)
        for action in report.actions:
            assert revert_action(service, action.id, principal=SYSTEM)
        # The worker carries the job when the interval is set.
        worker = Workflows(service).background_worker()
        assert "auto_respond" in [getattr(job, "__name__", "") for job in worker.jobs]
    finally:
        service.close()
