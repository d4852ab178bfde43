"""facegate.client covers every API operation, and works against a real server."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from facegate.client import FaceGateAPIError, FaceGateClient
from facegate.security import SYSTEM
from tests.api_fixtures import ServerThread
from tests.conftest import package_photo


def _service(tmp):
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'client.db'}", background_worker=False)
    return GalleryService(settings, migrate=True)


def test_the_client_declares_exactly_the_api_operations(tmp_path):
    """A route added without a client method (or a method left for a removed route) fails here."""
    from facegate.api import create_app

    service = _service(tmp_path)
    try:
        paths = create_app(service).openapi()["paths"]
    finally:
        service.close()
    operations = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    declared = set(FaceGateClient.ROUTES)
    assert operations - declared == set(), "API operations without a client method"
    assert declared - operations == set(), "client methods for operations the API does not have"
    for key, name in FaceGateClient.ROUTES.items():
        assert callable(getattr(FaceGateClient, name, None)), (key, name)
    assert len(set(FaceGateClient.ROUTES.values())) == len(FaceGateClient.ROUTES), "one method per operation"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from facegate.api import create_app

    tmp = tmp_path_factory.mktemp("client")
    service = _service(tmp)
    admin = service.create_api_key("admin", ["admin"], principal=SYSTEM)
    runner = ServerThread(create_app(service))
    runner.start()
    try:
        yield runner.base_url, admin.secret
    finally:
        runner.stop()
        service.close()


def test_a_representative_flow_through_the_client(server, tmp_path):
    url, secret = server
    yao, players = package_photo("yaoming.jpg"), package_photo("players.jpg")
    with FaceGateClient(url, api_key=secret) as fg:
        assert fg.health()["status"] == "ok" and fg.ready()["status"] == "ready"
        # Galleries, members, enrollment, recognition.
        fg.create_gallery("team")
        assert "team" in [g.name for g in fg.galleries()] and fg.gallery("team").model_id
        member = fg.create_member("team", "yao", "Yao Ming", ["lab:enter"])
        assert member.attributes["rights"] == ["lab:enter"]
        report = fg.enroll("team", "yao", [yao])
        assert report.accepted == 1, report
        assert [s.external_id for s in fg.subjects("team")] == ["yao"] and len(fg.faces("team", "yao")) == 1
        verified = fg.verify("team", "yao", yao)
        assert verified.match and verified.score > verified.threshold.threshold
        found = fg.identify("team", players)
        assert "yao" in [f.subject for f in found.faces if f.decision == "match"]
        assert fg.quality("team", yao) and fg.detect(players)
        door = fg.access_check("team", yao, right="lab:enter", where="lab")
        assert door.granted and door.subject == "yao"
        assert len(fg.decisions("team")) >= 3
        # Exams: roster, session, check-in (twice: a duplicate raises an alert), attendance.
        fg.create_gallery("exam")
        shutil.copy(yao, tmp_path / "yao.jpg")
        (tmp_path / "roster.csv").write_text("student_id,name,photo\ns1,Yao Ming,yao.jpg\n")
        roster = fg.import_roster("exam", tmp_path / "roster.csv")
        assert (roster.students_created, roster.photos_accepted, roster.errors) == (1, 1, [])
        now = dt.datetime.now(dt.timezone.utc)
        session = fg.create_exam_session("exam", {"code": "EX1", "course": "Basketball", "starts_at": now,
                                                  "ends_at": now + dt.timedelta(hours=2)})
        assert [s.code for s in fg.exam_sessions("exam")] == ["EX1"] and fg.exam_session("exam", "EX1").course == session.course
        assert fg.checkin("exam", "EX1", "s1", yao, kiosk="door").admitted
        again = fg.checkin("exam", "EX1", "s1", yao, kiosk="door")
        assert again.status == "duplicate" and again.alerts == ["duplicate_checkin"]
        csv_text = fg.attendance_csv("exam", "EX1")
        assert csv_text.splitlines()[0].startswith("student_id") and "s1" in csv_text
        assert fg.attendance_rows("exam", "EX1")[0]["student_id"] == "s1"
        # Alerts, lockouts, monitoring.
        alerts = fg.alerts("exam")
        assert [a.kind for a in alerts] == ["duplicate_checkin"]
        assert fg.ack_alert("exam", alerts[0].id, by="proctor").acknowledged_by == "proctor"
        assert fg.alerts("exam", unacknowledged=True) == [] and fg.lockouts("exam") == []
        drift = fg.drift("team")
        assert drift.gallery == "team" and not drift.drifted
        assert fg.monitoring_actions("team") == []
        # Keys: create, use, revoke.
        key = fg.create_key("kiosk", ["recognize"], gallery="team")
        assert key.id in [k.id for k in fg.keys()]
        with FaceGateClient(url, api_key=key.secret) as kiosk:
            assert kiosk.verify("team", "yao", yao).match
            fg.revoke_key(key.id)
            with pytest.raises(FaceGateAPIError) as refused:
                kiosk.verify("team", "yao", yao)
            assert refused.value.status == 401
        # Operators: an admin creates one, who signs in with a cookie (and the CSRF header).
        fg.create_operator("proctor1", "a long proctor password", role="proctor")
        with FaceGateClient(url) as proctor:
            assert proctor.operator_login("proctor1", "a long proctor password").role == "proctor"
            assert proctor.operator_me().username == "proctor1"
            # An unsafe request with the cookie passes the CSRF check (the first acknowledgement stays).
            assert proctor.ack_alert("exam", alerts[0].id, by="proctor1").acknowledged_by == "proctor"
            proctor.operator_logout()
            with pytest.raises(FaceGateAPIError):
                proctor.operator_me()
        assert "proctor1" in [o.username for o in fg.operators()]
        fg.delete_operator("proctor1")
        # The live WebSocket (not an OpenAPI operation): one frame, its faces named.
        answers = list(fg.live("team", [yao.read_bytes()]))
        assert answers[0]["frame"] == 0 and answers[0]["faces"], answers
        # Erasure.
        assert fg.delete_subject("team", "yao")["templates_erased"] == 1
        fg.delete_gallery("team")
        with pytest.raises(FaceGateAPIError) as gone:
            fg.gallery("team")
        assert gone.value.status == 404 and gone.value.code == "not_found"
