"""The automatic response as the server's worker runs it: a gallery whose recent probes drift
(darkened, blurred) gets a recorded, reversible recalibration without anyone asking; a second
pass inside the cooldown leaves it alone."""

from __future__ import annotations

import time

import cv2
import numpy as np

from tests.conftest import datasets_dir

PEOPLE = 40


def degrade(data: bytes) -> bytes:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    dark = np.clip(image.astype(np.float32) * 0.3, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", cv2.GaussianBlur(dark, (0, 0), 2.5), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return jpeg.tobytes()


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
    from facegate.errors import FaceGateError
    from facegate.gallery.service import GalleryService, PhotoInput
    from facegate.monitoring.auto import auto_respond
    from facegate.monitoring.drift import DriftWindows
    from facegate.monitoring.response import ResponsePolicy
    from facegate.workflows import Workflows

    lfw = datasets_dir("lfw")
    service = GalleryService(Settings(data_dir=tmp_path / "data", auto_respond_interval_s=3600))
    try:
        service.create_gallery("site")
        service.create_gallery("quiet")  # no decisions: checked, nothing to do
        enrolled = []
        for person in sorted(p for p in lfw.iterdir() if p.is_dir() and len(list(p.iterdir())) >= 2):
            photos = sorted(person.iterdir())
            if service.enroll("site", person.name, [PhotoInput(photos[0].name, photos[0].read_bytes())]).accepted:
                enrolled.append(photos)
            if len(enrolled) == PEOPLE:
                break

        def verify_all(transform=None):
            for photos in enrolled:
                data = photos[1].read_bytes()
                try:
                    service.verify("site", photos[0].parent.name, PhotoInput(photos[1].name, transform(data) if transform else data))
                except FaceGateError:
                    pass

        verify_all()
        verify_all(degrade)
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

        recorded = list_actions(service, "site")
        assert [a.id for a in recorded] == sorted((a.id for a in report.actions), reverse=True)
        for action in report.actions:
            assert service.revert_ops_action(action.id)
        # The worker carries the job when the interval is set.
        worker = Workflows(service).background_worker()
        assert "auto_respond" in [getattr(job, "__name__", "") for job in worker.jobs]
    finally:
        service.close()
