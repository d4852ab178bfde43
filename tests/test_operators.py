"""People sign in, machines use keys: operator accounts and sessions (cookie + CSRF), roles,
self-service galleries, the photo-quality route, security headers and the first admin."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, select

from facegate.security import SYSTEM
from tests.conftest import datasets_dir, package_photo

PASSWORD = "correct horse battery"
API = "/api/v1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A service on a fresh SQLite file (migrated as the server does), a gallery with one
    enrolled person, an admin key, an admin, a proctor and a lead operator."""
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery import operators
    from facegate.gallery.operators import OperatorIn
    from facegate.gallery.service import GalleryService, PhotoInput

    tmp = tmp_path_factory.mktemp("operators")
    service = GalleryService(Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'fg.db'}"), migrate=True)
    service.create_gallery("team", principal=SYSTEM)
    yao = package_photo("yaoming.jpg").read_bytes()
    assert service.enroll("team", "yao", [PhotoInput("yao.jpg", yao)], principal=SYSTEM).accepted == 1
    for name, role, gallery in (("root", "admin", None), ("proctor1", "proctor", "team"), ("lead1", "lead", "team")):
        operators.create_operator(service.ctx, OperatorIn(username=name, password=PASSWORD, role=role, gallery=gallery),
                                  SYSTEM)
    admin_key = service.create_api_key("admin", ["admin"], principal=SYSTEM).secret
    try:
        yield {"service": service, "app": create_app(service), "yao": yao, "admin_key": admin_key}
    finally:
        service.close()


def signed_in(site, username: str, password: str = PASSWORD) -> TestClient:
    client = TestClient(site["app"])
    r = client.post(API + "/auth/operator/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return client


def csrf(client: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies["fg_csrf"]}


def test_migration_builds_the_operator_tables(site):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from facegate.storage.models import Base

    engine = site["service"].ctx.db
    assert {"operators", "operator_sessions"} <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_login_cookie_me_csrf_and_logout(site):
    from facegate.storage.models import Operator

    client = TestClient(site["app"])
    assert client.get(API + "/auth/operator/me").status_code == 401
    r = client.post(API + "/auth/operator/login", json={"username": "root", "password": PASSWORD})
    assert r.status_code == 200 and r.json()["role"] == "admin" and r.json()["username"] == "root"
    cookies = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("fg_session="))
    csrf_cookie = next(c for c in cookies if c.startswith("fg_csrf="))
    assert "httponly" in session_cookie.lower() and "samesite=strict" in session_cookie.lower()
    assert "path=/" in session_cookie.lower() and "max-age=" in session_cookie.lower()
    assert "httponly" not in csrf_cookie.lower() and "samesite=strict" in csrf_cookie.lower()
    assert "secure" not in session_cookie.lower()  # plain http here; https sets Secure
    me = client.get(API + "/auth/operator/me").json()
    assert me["username"] == "root" and me["role"] == "admin"
    assert client.get(API + "/keys").status_code == 200  # the cookie authorises a safe request

    # An unsafe request with the cookie but without (or with a wrong) CSRF header: refused, nothing made.
    body = {"username": "temp1", "password": PASSWORD, "role": "proctor"}
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        r = client.post(API + "/operators", json=body, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "csrf_failed", r.text
    with site["service"].ctx.sessions() as s:
        assert s.scalar(select(Operator).where(Operator.username == "temp1")) is None
    r = client.post(API + "/operators", json=body, headers=csrf(client))
    assert r.status_code == 201 and r.json()["role"] == "proctor"
    assert "temp1" in {o["username"] for o in client.get(API + "/operators").json()}
    assert client.put(API + "/operators/temp1/password", json={"password": "short"}, headers=csrf(client)).status_code == 422
    assert client.put(API + "/operators/temp1/password", json={"password": PASSWORD + "!"},
                      headers=csrf(client)).status_code == 204
    assert client.delete(API + "/operators/temp1", headers=csrf(client)).status_code == 204

    # Logout revokes the row: the old cookie no longer works, even when sent again.
    old = client.cookies["fg_session"]
    assert client.post(API + "/auth/operator/logout", headers=csrf(client)).status_code == 204
    replay = TestClient(site["app"], cookies={"fg_session": old})
    assert replay.get(API + "/auth/operator/me").status_code == 401
    assert replay.get(API + "/keys").status_code == 401


def test_five_wrong_passwords_lock_the_operator(site):
    from facegate.gallery import operators
    from facegate.gallery.operators import OperatorIn

    ctx = site["service"].ctx
    operators.create_operator(ctx, OperatorIn(username="clumsy", password=PASSWORD, role="proctor"), SYSTEM)
    client = TestClient(site["app"])
    wrong = {"username": "clumsy", "password": "not the password"}
    assert [client.post(API + "/auth/operator/login", json=wrong).status_code for _ in range(5)] == [401] * 5
    r = client.post(API + "/auth/operator/login", json={"username": "clumsy", "password": PASSWORD})
    assert r.status_code == 423 and r.json()["code"] == "locked_out"
    assert next(o for o in operators.list_operators(ctx, SYSTEM) if o.username == "clumsy").locked
    operators.set_password(ctx, "clumsy", PASSWORD, SYSTEM)  # an admin lifts the lock
    assert client.post(API + "/auth/operator/login", json={"username": "clumsy", "password": PASSWORD}).status_code == 200
    # Another site's page cannot sign a browser in.
    r = client.post(API + "/auth/operator/login", json={"username": "clumsy", "password": PASSWORD},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"


def test_proctor_runs_exams_but_manages_nothing(site):
    proctor = signed_in(site, "proctor1")
    h = csrf(proctor)
    assert proctor.get(API + "/galleries/team/alerts").status_code == 200
    assert proctor.get(API + "/galleries/team/lockouts").status_code == 200
    now = dt.datetime.now(dt.timezone.utc)
    exam = {"code": "e1", "course": "CS1", "starts_at": (now - dt.timedelta(minutes=5)).isoformat(),
            "ends_at": (now + dt.timedelta(hours=1)).isoformat()}
    assert proctor.post(API + "/galleries/team/exam-sessions", json=exam, headers=h).status_code == 201
    assert proctor.get(API + "/galleries/team/exam-sessions").status_code == 200
    r = proctor.post(API + "/galleries/team/exam-sessions/e1/checkin", data={"student_id": "yao"},
                     files={"file": ("yao.jpg", site["yao"], "image/jpeg")}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "present", r.text
    r = proctor.post(API + "/keys", json={"name": "mine", "scopes": ["admin"]}, headers=h)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert proctor.patch(API + "/galleries/team/settings", json={"self_service": True}, headers=h).status_code == 403
    assert proctor.get(API + "/operators").status_code == 403


def test_lead_adds_team_members(site):
    lead = signed_in(site, "lead1")
    r = lead.post(API + "/galleries/team/members", json={"external_id": "m1", "display_name": "Member",
                                                         "rights": ["lab:enter"]}, headers=csrf(lead))
    assert r.status_code == 201, r.text
    assert lead.post(API + "/keys", json={"name": "x", "scopes": ["enroll"]}, headers=csrf(lead)).status_code == 403


def test_security_headers_on_pages_and_api(site):
    client = TestClient(site["app"])
    for path in ("/admin", API + "/health", API + "/galleries"):  # the last one a 401 problem
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert "script-src 'self';" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["permissions-policy"] == "camera=(self), microphone=()"


def test_self_service_registration_and_quality(site):
    from facegate.storage.models import Decision

    service = site["service"]
    service.create_gallery("kiosk", principal=SYSTEM)
    stranger = TestClient(site["app"])
    lfw = datasets_dir("lfw") / "Tony_Blair"
    photos = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted(lfw.iterdir())[:3]]
    form = {"username": "tblair", "password": PASSWORD, "consent": "true"}
    # Off (the default): strangers get the usual 401, on every self-service route.
    r = stranger.post(API + "/galleries/kiosk/accounts", data=form, files=photos)
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    yao = {"photo": ("yao.jpg", site["yao"], "image/jpeg")}
    assert stranger.post(API + "/galleries/kiosk/quality", files=yao).status_code == 401
    assert stranger.post(API + "/galleries/kiosk/login/face", files={"file": yao["photo"]}).status_code == 401
    service.update_gallery_settings("kiosk", {"self_service": True}, principal=SYSTEM)
    # On: registration works; other routes stay closed to strangers.
    r = stranger.post(API + "/galleries/kiosk/accounts", data=form, files=photos)
    assert r.status_code == 201 and r.json()["accepted_photos"] == 3, r.text
    assert stranger.get(API + "/galleries/kiosk/subjects").status_code == 401
    r = stranger.post(API + "/galleries/kiosk/login/face", files={"file": yao["photo"]})
    assert r.status_code == 401 and r.json()["authenticated"] is False  # let in, and not recognised
    assert stranger.post(API + "/galleries/kiosk/identify", files={"file": yao["photo"]}).status_code == 401
    assert stranger.post(API + "/galleries/team/quality", files=yao).status_code == 401  # not self-service

    def decisions() -> int:
        with service.ctx.sessions() as s:
            return int(s.scalar(select(func.count(Decision.id))) or 0)

    before = decisions()
    r = stranger.post(API + "/galleries/kiosk/quality", files=yao)
    assert r.status_code == 200, r.text
    faces = r.json()
    assert len(faces) == 1 and {"box", "score", "landmarks", "quality"} <= set(faces[0])
    assert "overall" in faces[0]["quality"] or faces[0]["quality"]
    assert decisions() == before  # live feedback is no decision
    # A key with 'enroll' only on the gallery may use it too; one bound elsewhere may not.
    enroll = service.create_api_key("enroller", ["enroll"], "team", principal=SYSTEM).secret
    assert TestClient(site["app"]).post(API + "/galleries/team/quality", files=yao,
                                        headers={"X-API-Key": enroll}).status_code == 200
    assert TestClient(site["app"]).post(API + "/galleries/kiosk/quality", files=yao,
                                        headers={"X-API-Key": enroll}).status_code == 404


def test_live_websocket_takes_the_cookie_from_this_site_only(site):
    proctor = signed_in(site, "proctor1")
    with proctor.websocket_connect(API + "/galleries/team/live", headers={"Origin": "https://evil.example"}) as ws:
        assert ws.receive_json()["error"] == "csrf_failed"
    with proctor.websocket_connect(API + "/galleries/team/live", headers={"Origin": "http://testserver"}) as ws:
        ws.send_bytes(site["yao"])
        answer = ws.receive_json()
        assert "error" not in answer and answer["frame"] == 0, answer


def test_first_start_creates_one_admin_operator(tmp_path, capsys):
    from facegate.cli.serve import announce_first_admin
    from facegate.config import Settings
    from facegate.gallery import operators
    from facegate.gallery.service import GalleryService

    service = GalleryService(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'f.db'}"),
                             migrate=True)
    try:
        password = announce_first_admin(service)
        assert password and password in capsys.readouterr().out
        assert announce_first_admin(service) is None  # once only
        assert [(o.username, o.role) for o in operators.list_operators(service.ctx, SYSTEM)] == [("admin", "admin")]
        signed = operators.login(service.ctx, "admin", password)
        resolved = operators.resolve_session(service.ctx, signed.token)
        assert resolved is not None and resolved.principal.operator == "admin"
        assert resolved.principal.scopes == frozenset({"admin"})
    finally:
        service.close()


def test_operator_cli(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from facegate.cli import app
    from facegate.config import get_settings

    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FACEGATE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        made = runner.invoke(app, ["operator", "create", "pat", "--role", "lead", "--password-stdin"], input=PASSWORD + "\n")
        assert made.exit_code == 0 and "operator pat (lead) created" in made.output, made.output
        short = runner.invoke(app, ["operator", "create", "sam", "--password-stdin"], input="short\n")
        assert short.exit_code == 2 and "password" in short.output
        listed = runner.invoke(app, ["operator", "list"])
        assert listed.output.split()[:2] == ["pat", "lead"] and "sam" not in listed.output
        changed = runner.invoke(app, ["operator", "password", "pat", "--password-stdin"], input=PASSWORD + "?\n")
        assert changed.exit_code == 0, changed.output
        assert runner.invoke(app, ["operator", "delete", "pat"]).exit_code == 0
        assert "pat" not in runner.invoke(app, ["operator", "list"]).output
    finally:
        get_settings.cache_clear()
