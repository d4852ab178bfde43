"""Moving a gallery to another recognition model is an explicit re-enrollment job."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from facegate.config import Settings
from facegate.errors import ConflictError
from facegate.gallery.schemas import SubjectIn
from facegate.gallery.service import GalleryService, PhotoInput
from facegate.security import SYSTEM
from tests.conftest import package_photo


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def service(tmp_path):
    svc = GalleryService(settings=Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'fg.db'}"), migrate=True)
    yield svc
    svc.close()


def test_switching_to_dlib_replaces_every_template_and_keeps_recognising(service, portrait):
    yao = PhotoInput("yao.jpg", package_photo("yaoming.jpg").read_bytes())
    mirrored = PhotoInput("yao_mirror.png", _png(np.ascontiguousarray(portrait[:, ::-1])))
    service.create_gallery("team", principal=SYSTEM)
    assert service.enroll("team", "yao", [yao], principal=SYSTEM).accepted == 1
    service.create_subject("team", SubjectIn(external_id="empty"), principal=SYSTEM)

    with pytest.raises(ConflictError, match="without a template"):
        service.switch_model("team", "dlib", {"yao": [yao]}, detector="dlib", principal=SYSTEM)
    assert service.get_gallery("team", principal=SYSTEM).model_id == "arcface"  # nothing changed on refusal

    result = service.switch_model("team", "dlib", {"yao": [yao]}, detector="dlib", allow_partial=True, principal=SYSTEM)
    assert result["to"] == "dlib" and result["subjects_without_template"] == ["empty"]
    gallery = service.get_gallery("team", principal=SYSTEM)
    assert (gallery.model_id, gallery.detector, gallery.templates) == ("dlib", "dlib", 1)
    verdict = service.verify("team", "yao", mirrored, principal=SYSTEM)
    assert verdict.match and verdict.threshold.threshold > 0.8  # dlib's own calibration
    assert "switch_model" in {d.kind for d in service.list_decisions("team", principal=SYSTEM).items}


def test_switch_model_over_http(tmp_path):
    """The same job through POST /galleries/{g}/switch-model on a real server."""
    import httpx

    from facegate.api import create_app
    from tests.api_fixtures import ServerThread

    svc = GalleryService(settings=Settings(data_dir=tmp_path / "data"), migrate=True)
    admin = svc.create_api_key("admin", ["admin"], principal=SYSTEM).secret
    runner = ServerThread(create_app(svc))
    runner.start()
    try:
        yao = package_photo("yaoming.jpg").read_bytes()
        with httpx.Client(base_url=runner.base_url + "/api/v1", headers={"X-API-Key": admin}, timeout=120) as http:
            assert http.post("/galleries", json={"name": "team"}).status_code == 201
            assert http.post("/galleries/team/subjects/yao/enroll", files=[("files", ("y.jpg", yao))]).json()["accepted"] == 1
            bad = http.post("/galleries/team/switch-model", data={"model": "dlib"}, files=[("files", ("y.jpg", yao))])
            assert bad.status_code == 400 and "<external_id>/<file>" in bad.json()["detail"]
            r = http.post("/galleries/team/switch-model", data={"model": "dlib", "detector": "dlib"},
                          files=[("files", ("yao/y.jpg", yao))])
            assert r.status_code == 200, r.text
            assert r.json()["from"].startswith("arcface@") and r.json()["to"] == "dlib" and r.json()["subjects_reenrolled"] == 1
            assert http.get("/galleries/team").json()["model_id"] == "dlib"
            verify = http.post("/galleries/team/subjects/yao/verify", files={"file": ("y.jpg", yao)}).json()
            assert verify["match"] and verify["threshold"]["calibration"].startswith("default")
    finally:
        runner.stop()
        svc.close()
