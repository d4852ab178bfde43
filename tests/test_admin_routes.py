"""The administration page's read-only routes: GET /api/v1/models (the same rows as
``facegate models``) and GET /api/v1/galleries/{gallery}/calibration (the calibration in force,
its threshold table, the gallery's verify threshold, and ROC points when it holds them)."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from facegate.calibration import ShippedCalibrations
from facegate.security import SYSTEM
from tests.api_fixtures import ServerThread

ROC = {"far": [1e-1, 1e-2, 1e-3, 1e-4], "tar": [0.999, 0.995, 0.98, 0.95], "thresholds": [0.1, 0.18, 0.24, 0.29]}


class RocCalibrations(ShippedCalibrations):
    """The shipped calibration, plus ROC points for the dlib model (as a registry version has)."""

    def calibration_for(self, model_id: str, model_sha256: str):
        calibration = super().calibration_for(model_id, model_sha256)
        if model_id == "dlib":
            return dataclasses.replace(calibration, name="with-roc", extra={"roc": ROC, "target_far": 1e-4})
        return calibration


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.schemas import GallerySettings
    from facegate.gallery.service import GalleryService

    tmp = tmp_path_factory.mktemp("admin_routes")
    service = GalleryService(Settings(data_dir=tmp / "data"), migrate=True, calibrations=RocCalibrations())
    service.create_gallery("campus", settings=GallerySettings(verify_far=1e-3), principal=SYSTEM)
    service.create_gallery("doors", model="dlib", detector="dlib", principal=SYSTEM)
    keys = {
        "admin": service.create_api_key("admin", ["admin"], principal=SYSTEM).secret,
        "proctor": service.create_api_key("proctor", ["proctor"], principal=SYSTEM).secret,
        "recognize": service.create_api_key("kiosk", ["recognize"], principal=SYSTEM).secret,
        "doors-admin": service.create_api_key("doors", ["admin"], "doors", principal=SYSTEM).secret,
    }
    runner = ServerThread(create_app(service))
    runner.start()
    clients = {name: httpx.Client(base_url=runner.base_url + "/api/v1", headers={"X-API-Key": secret})
               for name, secret in keys.items()}
    yield clients
    for c in clients.values():
        c.close()
    runner.stop()
    service.close()


def test_models_are_the_cli_rows_with_the_galleries_that_use_them(api):
    from facegate.cli.models import _model_rows

    r = api["admin"].get("/models")
    assert r.status_code == 200, r.text
    rows = {m["key"]: m for m in r.json()}
    cli = {m["key"]: m for m in _model_rows()}
    assert set(rows) == set(cli)
    for key, row in cli.items():  # one source of truth: the CLI's rows, plus who uses them
        assert {k: rows[key][k] for k in row} == row
    assert rows["arcface_mbf"]["checksum"] == "ok" and rows["arcface_mbf"]["commercial_use"] is False
    assert rows["arcface_mbf"]["used_by"] == ["campus"] and rows["scrfd_500m"]["used_by"] == ["campus"]
    assert rows["dlib_resnet"]["used_by"] == ["doors"] and rows["dlib_hog"]["used_by"] == ["doors"]
    assert rows["dlib_hog"]["checksum"] == "built in" and rows["landmark_2d106"]["used_by"] == []


def test_models_need_the_admin_scope(api):
    assert api["recognize"].get("/models").status_code == 403
    assert api["proctor"].get("/models").status_code == 403
    with httpx.Client(base_url=str(api["admin"].base_url)) as anonymous:
        assert anonymous.get("/models").status_code == 401


def test_calibration_in_force_with_the_gallery_threshold(api):
    r = api["admin"].get("/galleries/campus/calibration")
    assert r.status_code == 200, r.text
    c = r.json()
    shipped = ShippedCalibrations().calibration_for("arcface", c["model_sha256"])
    assert c["name"] == "default" and c["model_id"] == "arcface" and c["source"] == shipped.source
    assert [p["far"] for p in c["table"]] == list(shipped.fars)
    assert [p["threshold"] for p in c["table"]] == list(shipped.thresholds)
    assert all(p["measured"] == (p["far"] >= shipped.min_far) for p in c["table"])
    assert c["verify_far"] == 1e-3 and c["verify_threshold"] == pytest.approx(shipped.threshold_at(1e-3))
    assert c["resolvable"] is True and c["roc"] is None and c["identify_fpir"] == 1e-3
    # The same threshold the gallery itself reports (what the admin page's header shows).
    g = api["admin"].get("/galleries/campus").json()
    assert g["active_calibration"]["threshold"] == pytest.approx(shipped.threshold_at(1e-3))


def test_calibration_with_roc_points(api):
    c = api["doors-admin"].get("/galleries/doors/calibration").json()
    assert c["name"] == "with-roc" and c["model_id"] == "dlib"
    assert [(p["far"], p["tar"], p["threshold"]) for p in c["roc"]] == list(zip(ROC["far"], ROC["tar"], ROC["thresholds"]))
    assert c["extra"] == {"target_far": 1e-4}  # the ROC is not repeated in extra


def test_calibration_scope_and_gallery_binding(api):
    assert api["proctor"].get("/galleries/campus/calibration").status_code == 200
    assert api["recognize"].get("/galleries/campus/calibration").status_code == 403
    assert api["doors-admin"].get("/galleries/campus/calibration").status_code == 404  # another gallery's key
    assert api["admin"].get("/galleries/nowhere/calibration").status_code == 404
