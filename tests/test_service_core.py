"""The service core: one decision path for photos, decoded frames and faces already found;
fail-closed callers; decision observers; calibration providers; migrations only on request."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facegate.calibration import default_calibration
from facegate.config import Settings
from facegate.errors import PermissionDeniedError
from facegate.gallery.inputs import FrameInput, PhotoInput, Probe
from facegate.gallery.service import GalleryService
from facegate.imaging import decode_image
from facegate.security import SYSTEM, Principal
from facegate.storage.db import current_revision, head_revision, upgrade_if_needed
from tests.conftest import datasets_dir, package_photo

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(tmp_path):
    svc = GalleryService(Settings(data_dir=tmp_path / "data"), migrate=True)
    yield svc
    svc.close()


def lfw_photo(name: str, index: int) -> bytes:
    """The ``index``-th photo (0-based, name order) of an LFW person."""
    return sorted((datasets_dir("lfw") / name).iterdir())[index].read_bytes()


def test_frame_and_faces_routes_decide_exactly_like_the_photo_route(service):
    """A real LFW photo decoded once gives the same verify and identify answers through the
    frame and the faces entry points as its bytes through the photo route."""
    service.create_gallery("g", principal=SYSTEM)
    for person in ("Jean_Chretien", "Tony_Blair"):
        assert service.enroll("g", person, [PhotoInput("a.jpg", lfw_photo(person, 0))], principal=SYSTEM).accepted == 1
    data = lfw_photo("Jean_Chretien", 1)
    frame = decode_image(data, service.ctx.image_limits)  # decoded once, as a video reader would
    engine = service.ctx.engines.get("arcface", "scrfd")
    probe = Probe("frame-7", engine.analyze(frame), height=frame.shape[0], width=frame.shape[1])
    inputs = [PhotoInput("p.jpg", data), FrameInput("frame-7", frame), probe]

    verdicts = [service.verify("g", "Jean_Chretien", item, principal=SYSTEM) for item in inputs]
    assert verdicts[0].match and verdicts[0].score > verdicts[0].threshold.threshold
    for other in verdicts[1:]:
        assert (other.match, other.score, other.faces_in_image, other.face.box) == (
            verdicts[0].match, verdicts[0].score, verdicts[0].faces_in_image, verdicts[0].face.box)
        assert other.threshold == verdicts[0].threshold
    impostor = [service.verify("g", "Tony_Blair", item, principal=SYSTEM) for item in inputs]
    assert not impostor[0].match
    assert {v.score for v in impostor} == {impostor[0].score}

    found = [service.identify("g", item, principal=SYSTEM) for item in inputs]
    assert found[0].faces[0].subject == "Jean_Chretien"
    for other in found[1:]:
        assert [(f.decision, f.subject, f.score) for f in other.faces] == [
            (f.decision, f.subject, f.score) for f in found[0].faces]
    decisions = service.list_decisions("g", kind="verify", principal=SYSTEM).items
    assert len(decisions) == 6 and all(d.calibration for d in decisions)  # every route is logged alike


def test_enrollment_takes_frames_and_skips_the_same_frame_twice(service):
    service.create_gallery("g", principal=SYSTEM)
    frame = decode_image(package_photo("yaoming.jpg").read_bytes())
    first = service.enroll("g", "yao", [FrameInput("cam-1", frame)], principal=SYSTEM)
    assert (first.accepted, first.items[0].status) == (1, "accepted")
    again = service.enroll("g", "yao", [FrameInput("cam-2", frame.copy())], principal=SYSTEM)
    assert (again.skipped, again.items[0].code) == (1, "duplicate")
    # The photo's own bytes are another source: they are checked against the subject, not skipped.
    crowd = service.enroll("g", "crowd", [FrameInput("team", decode_image(package_photo("players.jpg").read_bytes()))],
                           principal=SYSTEM)
    assert crowd.items[0].code == "many_faces"
    with pytest.raises(Exception, match="RGB uint8"):
        FrameInput("bad", np.zeros((10, 10), np.float32))


def test_faces_from_another_model_are_refused(service, dlib_engine):
    from facegate.errors import ModelMismatchError

    service.create_gallery("g", principal=SYSTEM)
    frame = decode_image(package_photo("yaoming.jpg").read_bytes())
    assert service.enroll("g", "yao", [FrameInput("f", frame)], principal=SYSTEM).accepted == 1
    foreign = Probe("dlib", dlib_engine.analyze(frame), frame.shape[0], frame.shape[1])
    with pytest.raises(ModelMismatchError):
        service.verify("g", "yao", foreign, principal=SYSTEM)


def _principal_parameters(cls) -> list[tuple[str, inspect.Parameter]]:
    out = []
    for name, member in inspect.getmembers(cls, inspect.isfunction):
        params = inspect.signature(member).parameters
        if "principal" in params:
            out.append((f"{cls.__name__}.{name}", params["principal"]))
    return out


def test_no_method_defaults_to_a_principal_and_a_missing_one_is_refused(service):
    from facegate.monitoring import drift, response
    from facegate.workflows import access, accounts, alerts, exam, lockout

    classes = [GalleryService, access.AccessService, accounts.AccountService, alerts.AlertCenter,
               exam.ExamService, lockout.LockoutGuard]
    checked = [p for cls in classes for p in _principal_parameters(cls)]
    checked += [(f.__name__, inspect.signature(f).parameters["principal"])
                for f in (drift.gallery_drift, response.respond, response.list_actions, response.revert_action)]
    assert len(checked) >= 40  # the introspection found the methods it is meant to check
    defaulted = [name for name, p in checked if p.default is not inspect.Parameter.empty]
    assert defaulted == []

    service.create_gallery("g", principal=SYSTEM)
    with pytest.raises(TypeError, match="principal"):
        service.get_gallery("g")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="principal"):
        drift.gallery_drift(service, "g")  # type: ignore[call-arg]
    for bogus in (None, "admin", {"scopes": ["admin"]}):
        with pytest.raises(PermissionDeniedError):
            service.get_gallery("g", principal=bogus)  # type: ignore[arg-type]
        with pytest.raises(PermissionDeniedError):
            service.list_api_keys(principal=bogus)  # type: ignore[arg-type]
    reader = Principal(key_id=1, scopes=frozenset({"recognize"}), gallery_id=None)
    with pytest.raises(PermissionDeniedError):
        service.delete_gallery("g", principal=reader)
    assert service.get_gallery("g", principal=reader).name == "g"


class _Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def observe_decision(self, kind, outcome, score=None, quality=None, details=None) -> None:
        self.seen.append((kind, outcome))


class _Broken:
    def observe_decision(self, *args, **kwargs) -> None:
        raise RuntimeError("observer down")


def test_observers_hear_every_decision_and_cannot_fail_one(tmp_path):
    recorder = _Recorder()
    svc = GalleryService(Settings(data_dir=tmp_path / "d"), migrate=True, observers=[_Broken(), recorder])
    try:
        svc.create_gallery("g", principal=SYSTEM)
        photo = PhotoInput("yao.jpg", package_photo("yaoming.jpg").read_bytes())
        assert svc.enroll("g", "yao", [photo], principal=SYSTEM).accepted == 1
        assert svc.verify("g", "yao", photo, principal=SYSTEM).match
        assert recorder.seen == [("enroll", "accepted"), ("verify", "match")]
    finally:
        svc.close()


class _StrictCalibrations:
    """A provider whose table sits every threshold at 0.99: nothing real passes it."""

    def calibration_for(self, model_id: str, model_sha256: str):
        base = default_calibration(model_id)
        return dataclasses.replace(base, name="strict", thresholds=(0.99,) * len(base.fars))


def test_the_calibration_in_force_comes_from_the_provider(tmp_path):
    svc = GalleryService(Settings(data_dir=tmp_path / "d"), migrate=True, calibrations=_StrictCalibrations())
    try:
        svc.create_gallery("g", principal=SYSTEM)
        photo = PhotoInput("yao.jpg", package_photo("yaoming.jpg").read_bytes())
        svc.enroll("g", "yao", [photo], principal=SYSTEM)
        mirrored = PhotoInput("m.jpg", _mirrored_jpeg(package_photo("yaoming.jpg")))
        verdict = svc.verify("g", "yao", mirrored, principal=SYSTEM)
        assert verdict.threshold.threshold == pytest.approx(0.99) and verdict.threshold.calibration.startswith("strict")
        assert not verdict.match and verdict.score > 0.5  # the shipped table would have let it pass
    finally:
        svc.close()


def _mirrored_jpeg(path: Path) -> bytes:
    import cv2

    image = cv2.imread(str(path))
    ok, data = cv2.imencode(".jpg", image[:, ::-1])
    assert ok
    return data.tobytes()


def test_the_request_path_imports_neither_mlflow_nor_prometheus():
    code = ("import sys; import facegate.gallery.service, facegate.workflows; "
            "print(sorted(m for m in ('mlflow', 'prometheus_client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"


def test_the_service_does_not_migrate_unless_asked(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    svc = GalleryService(Settings(data_dir=tmp_path / "d", database_url=url))
    svc.close()
    assert current_revision(url) is None
    assert upgrade_if_needed(url) is True
    assert current_revision(url) == head_revision()
    assert upgrade_if_needed(url) is False
