"""Input that once made the server answer 500 (found by Schemathesis and by hand) is refused
at the edge with a 4xx that says why, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from facegate.security import SYSTEM
from tests.api_fixtures import pg_server  # noqa: F401 - a fixture, used by name
from tests.conftest import package_photo

BIG = str(2**70)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request, tmp_path_factory):
    from fastapi.testclient import TestClient

    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService
    from tests.api_fixtures import fresh_database_url

    tmp = tmp_path_factory.mktemp(f"edge_{request.param}")
    url = fresh_database_url(request.param, tmp, request, prefix="facegate_edge")
    service = GalleryService(Settings(data_dir=tmp / "data", database_url=url, background_worker=False,
                                      rate_limit_enabled=False), migrate=True)
    service.create_gallery("g", principal=SYSTEM)
    key = service.create_api_key("admin", ["admin"], principal=SYSTEM).secret
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        c.headers["X-API-Key"] = key
        yield c
    service.close()


@pytest.mark.parametrize("method, path", [
    ("POST", f"/api/v1/monitoring/actions/{BIG}/revert"),
    ("DELETE", f"/api/v1/keys/{BIG}"),
    ("DELETE", f"/api/v1/galleries/g/subjects/x/faces/{BIG}"),
    ("POST", f"/api/v1/galleries/g/alerts/{BIG}/ack"),
    ("GET", f"/api/v1/galleries/g/alerts?session_id={BIG}"),
    ("GET", "/api/v1/galleries/g/monitoring/drift?recent_days=1e300"),
    ("GET", "/api/v1/galleries/g/monitoring/drift?reference_days=1e300"),
])
def test_numbers_past_their_range_are_422(client, method, path):
    r = client.request(method, path, json={"by": "x"} if method == "POST" else None)
    assert r.status_code == 422, (r.status_code, r.text)


def test_json_nested_thousands_deep_is_a_400(client):
    body = "[" * 5000 + "]" * 5000
    r = client.post("/api/v1/galleries", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422), r.text


@pytest.mark.parametrize("subject", ["x" * 5000, "a\x00b", "line\r\nbreak"])
def test_the_enroll_url_applies_the_subject_id_rules(client, subject):
    photo = package_photo("yaoming.jpg").read_bytes()
    r = client.post(f"/api/v1/galleries/g/subjects/{quote(subject, safe='')}/enroll",
                    files=[("files", ("p.jpg", photo, "image/jpeg"))])
    assert r.status_code in (400, 404, 422), (r.status_code, r.text[:200])
    assert client.get("/api/v1/galleries/g").json()["subjects"] == 0


def test_a_nul_in_a_text_field_is_a_400_not_a_500(client):
    r = client.post("/api/v1/galleries/g/subjects", json={"external_id": "ok-id", "display_name": "a\x00b"})
    assert r.status_code in (201, 400), r.text  # SQLite stores it; PostgreSQL refuses: both fine, never 500
    r = client.patch("/api/v1/galleries/g/settings", json={"alert_webhook_secret": "s\x00"})
    assert r.status_code < 500, r.text


@pytest.mark.parametrize("changes", [{"checkin_opens_minutes": 1e300}, {"starts_at": "0001-01-01T00:00:00Z"},
                                     {"reverify_window_s": 1e300}])
def test_exam_sessions_that_would_break_later_check_ins_are_refused(client, changes):
    body = {"code": "E-" + json.dumps(changes)[:20].replace("/", ""), "course": "C",
            "starts_at": "2026-01-01T09:00:00Z", "ends_at": "2026-01-01T11:00:00Z", **changes}
    r = client.post("/api/v1/galleries/g/exam-sessions", json=body)
    assert r.status_code == 422, r.text
