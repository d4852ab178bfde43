"""The three workflows end to end over HTTP, against a real uvicorn server (with its
background worker running) on SQLite and on PostgreSQL, with real LFW photos:
exam check-in with attendance, alerts, webhook and lockout; self-service registration and
face login; team access rights.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from facegate.modelops.registry import RegistryCalibrations
from facegate.security import SYSTEM
from tests.api_fixtures import (  # noqa: F401 - fixtures are used by name
    ServerThread,
    backend,
    blank_png,
    fresh_database_url,
    pg_server,
)
from tests.conftest import datasets_dir

NOW = dt.datetime.now(dt.timezone.utc)

# LFW photos (enrolled index, probe index) ArcFace separates far from any threshold in use;
# the same people and photos the API tests use (see tests/test_api.py CROWD).
STUDENTS = {
    "S001": ("Roger_Federer", 6, 7),
    "S002": ("Naoto_Kan", 1, 3),
    "S003": ("William_Macy", 3, 4),
    "S004": ("Martha_Stewart", 3, 4),
    "S005": ("Yasser_Arafat", 2, 3),
}


def lfw_path(name: str, index: int):
    path = datasets_dir("lfw") / name / f"{name}_{index:04d}.jpg"
    if not path.exists():
        pytest.skip(f"{path} is not in the shared LFW copy")
    return path


def lfw_bytes(name: str, index: int) -> bytes:
    return lfw_path(name, index).read_bytes()


# -- a webhook receiver that fails twice, then accepts ---------------------------------------------
class Receiver:
    """A real HTTP server on localhost recording every POST; the first ``fail_first`` get 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[dict] = []
        self.accepted: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                entry = {"headers": dict(self.headers), "body": body, "at": time.monotonic()}
                outer.requests.append(entry)
                if len(outer.requests) <= outer.fail_first:
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"down for maintenance")
                    return
                outer.accepted.append(entry)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/facegate"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the server ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(backend, request, tmp_path_factory):
    """A server per backend (SQLite file, PostgreSQL database), its background worker running."""
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    tmp = tmp_path_factory.mktemp(f"workflows_{backend}")
    url = fresh_database_url(backend, tmp, request, prefix="facegate_wf")
    # The webhook receiver of these tests listens on loopback, which an operator must allow.
    settings = Settings(data_dir=tmp / "data", database_url=url, outbound_allowed_hosts="127.0.0.1")
    service = GalleryService(settings, migrate=True, calibrations=RegistryCalibrations(settings))  # as the server
    admin = service.create_api_key("admin", ["admin"], principal=SYSTEM)
    app = create_app(service)
    runner = ServerThread(app, lifespan="on")
    runner.start()
    yield {"url": runner.base_url, "admin": admin.secret, "service": service, "app": app}
    runner.stop()
    service.close()


@pytest.fixture(scope="module")
def http(server):
    import httpx

    with httpx.Client(base_url=server["url"] + "/api/v1", headers={"X-API-Key": server["admin"]}, timeout=120) as c:
        yield c


def new_gallery(http, name: str, **settings) -> str:
    r = http.post("/galleries", json={"name": name, "settings": settings})
    assert r.status_code == 201, r.text
    return name


def alerts_of(http, gallery: str, **params) -> list[dict]:
    r = http.get(f"/galleries/{gallery}/alerts", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def checkin(http, gallery, code, student_id, photo: bytes, kiosk="hall-A-1"):
    return http.post(
        f"/galleries/{gallery}/exam-sessions/{code}/checkin",
        data={"student_id": student_id, "kiosk": kiosk},
        files={"file": ("live.jpg", photo, "image/jpeg")},
    )


# -- 1. exam check-in -------------------------------------------------------------------------------
def test_exam_checkin_end_to_end(http, tmp_path):
    g = new_gallery(http, "exam-e2e", lockout_failures=3, lockout_minutes=10)
    # The roster: photo cells name uploaded files, one of them a folder; one bad row, one missing photo.
    rows = [("student_id", "name", "photo")]
    files = []
    for sid, (name, enrolled, _) in STUDENTS.items():
        if sid == "S001":  # a folder of two photos
            rows.append((sid, name.replace("_", " "), "federer/"))
            files += [("photos", (f"federer/{name}_{i:04d}.jpg", lfw_bytes(name, i), "image/jpeg")) for i in (enrolled, 3)]
        else:
            rows.append((sid, name.replace("_", " "), f"{sid}.jpg"))
            files.append(("photos", (f"{sid}.jpg", lfw_bytes(name, enrolled), "image/jpeg")))
    rows += [("", "No Id", "x.jpg"), ("S099", "Missing Photo", "nothere.jpg"), ("S098", "Blank Card", "blank.png")]
    files.append(("photos", ("blank.png", blank_png(), "image/png")))
    text = "\n".join(",".join(r) for r in rows) + "\n"
    r = http.post(f"/galleries/{g}/roster", files=[("roster", ("roster.csv", text.encode(), "text/csv"))] + files)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["rows"] == 8
    assert report["students_created"] == 5  # the blank-card row's student is not created: no usable photo
    assert http.get(f"/galleries/{g}/subjects/S098").status_code == 404
    assert report["photos_accepted"] == 6
    codes = {(e["line"], e["code"]) for e in report["errors"]}
    assert (7, "invalid_row") in codes and (8, "invalid_row") in codes and (9, "no_face") in codes, report["errors"]

    # Re-import: names updated, nothing duplicated.
    # A repeated id (line 10) is reported and skipped: it never renames the student of line 3.
    text2 = text.replace("Naoto Kan", "Naoto KAN") + "S002,Someone Else,S002.jpg\n"
    r = http.post(f"/galleries/{g}/roster", files=[("roster", ("roster.csv", text2.encode(), "text/csv"))] + files)
    report2 = r.json()
    assert (10, "duplicate_id") in {(e["line"], e["code"]) for e in report2["errors"]}, report2["errors"]
    assert report2["students_created"] == 0 and report2["students_updated"] == 5
    assert report2["photos_accepted"] == 0 and report2["photos_skipped"] == 6
    assert http.get(f"/galleries/{g}/subjects/S002").json()["display_name"] == "Naoto KAN"
    assert http.get(f"/galleries/{g}").json()["templates"] == 6

    session = {"code": "CS101-final", "course": "CS101", "room": "Hall A",
               "starts_at": (NOW - dt.timedelta(minutes=5)).isoformat(), "ends_at": (NOW + dt.timedelta(hours=2)).isoformat(),
               "students": list(STUDENTS)}
    assert http.post(f"/galleries/{g}/exam-sessions", json=session).status_code == 201
    assert http.post(f"/galleries/{g}/exam-sessions", json=session).status_code == 409

    # Genuine check-ins with another photo of each student.
    for sid in ("S001", "S002"):
        name, _, probe = STUDENTS[sid]
        res = checkin(http, g, "CS101-final", sid, lfw_bytes(name, probe)).json()
        assert res["status"] == "present" and res["admitted"], res
        assert res["score"] >= res["threshold"] and res["alerts"] == []
    # A second check-in of the same student.
    res = checkin(http, g, "CS101-final", "S001", lfw_bytes("Roger_Federer", 7), kiosk="hall-A-2").json()
    assert res["status"] == "duplicate" and res["alerts"] == ["duplicate_checkin"]
    # Two kiosks at once for the same student: one admitted, the other a duplicate. (The race
    # window is the few ms between reading and writing the attendance; the service serialises it.)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        both = list(pool.map(lambda k: checkin(http, g, "CS101-final", "S003", lfw_bytes("William_Macy", 4), kiosk=k).json(),
                             ["hall-B-1", "hall-B-2"]))
    assert sorted(r["status"] for r in both) == ["duplicate", "present"], both
    # Impersonation: S005's face presented with S004's id is rejected, and named.
    res = checkin(http, g, "CS101-final", "S004", lfw_bytes("Yasser_Arafat", 3)).json()
    assert res["status"] == "rejected" and not res["admitted"]
    assert res["alerts"] == ["impersonation"] and res["suspects"][0]["subject"] == "S005"
    # A stranger (not enrolled) with S004's id: a plain mismatch.
    res = checkin(http, g, "CS101-final", "S004", lfw_bytes("Jean_Chretien", 2)).json()
    assert res["status"] == "rejected" and res["alerts"] == ["mismatch"]
    # An unknown id.
    res = checkin(http, g, "CS101-final", "S777", lfw_bytes("Jean_Chretien", 2)).json()
    assert res["status"] == "unknown_id" and res["alerts"] == ["unknown_id"]
    # A third failure for S004 locks it; the next attempt, even genuine, is refused (423).
    res = checkin(http, g, "CS101-final", "S004", lfw_bytes("Jean_Chretien", 3)).json()
    assert res["status"] == "rejected" and res["locked"] is True
    r = checkin(http, g, "CS101-final", "S004", lfw_bytes("Martha_Stewart", 4))
    assert r.status_code == 423 and r.json()["code"] == "locked_out"
    locks = http.get(f"/galleries/{g}/lockouts").json()
    assert [lk["identity"] for lk in locks] == ["S004"]
    assert http.delete(f"/galleries/{g}/lockouts/S004", params={"by": "proctor"}).json()["cleared_by"] == "proctor"
    res = checkin(http, g, "CS101-final", "S004", lfw_bytes("Martha_Stewart", 4)).json()
    assert res["status"] == "present", res
    # No face: a clear error, nothing recorded as attendance.
    r = checkin(http, g, "CS101-final", "S005", blank_png())
    assert r.status_code == 422 and r.json()["code"] == "no_face"

    kinds = [a["kind"] for a in alerts_of(http, g)]
    for k in ("duplicate_checkin", "impersonation", "mismatch", "unknown_id", "lockout", "locked_attempt"):
        assert k in kinds, kinds
    first = alerts_of(http, g, kind="impersonation")[0]
    acked = http.post(f"/galleries/{g}/alerts/{first['id']}/ack", json={"by": "proctor-1"}).json()
    assert acked["acknowledged_by"] == "proctor-1" and acked["acknowledged_at"]
    assert first["id"] not in [a["id"] for a in alerts_of(http, g, unacknowledged=True)]

    # Attendance export: every expected student, the unknown id too.
    r = http.get(f"/galleries/{g}/exam-sessions/CS101-final/attendance")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = {row["student_id"]: row for row in csv.DictReader(io.StringIO(r.text))}
    assert {s: table[s]["status"] for s in STUDENTS} == {
        "S001": "present", "S002": "present", "S003": "present", "S004": "present", "S005": "absent"
    }
    assert table["S777"]["status"] == "unknown_id"
    assert int(table["S004"]["attempts"]) == 5 and int(table["S004"]["alerts"]) >= 4
    assert float(table["S001"]["score"]) >= float(table["S001"]["threshold"])

    # Outside the window: refused with a clear error.
    late = dict(session, code="CS101-past", starts_at=(NOW - dt.timedelta(days=2)).isoformat(),
                ends_at=(NOW - dt.timedelta(days=1)).isoformat())
    http.post(f"/galleries/{g}/exam-sessions", json=late)
    r = checkin(http, g, "CS101-past", "S002", lfw_bytes("Naoto_Kan", 3))
    assert r.status_code == 409 and r.json()["code"] == "session_closed"


def test_online_exam_reverification(http, server):
    g = new_gallery(http, "exam-online")
    for sid in ("S002", "S003"):
        name, enrolled, _ = STUDENTS[sid]
        r = http.post(f"/galleries/{g}/subjects/{sid}/enroll", files=[("files", ("a.jpg", lfw_bytes(name, enrolled)))])
        assert r.json()["accepted"] == 1
    session = {"code": "ONLINE-1", "course": "MATH2", "online": True, "reverify_random": 2, "reverify_window_s": 2,
               "starts_at": NOW.isoformat(), "ends_at": (NOW + dt.timedelta(hours=1)).isoformat()}
    assert http.post(f"/galleries/{g}/exam-sessions", json=session).status_code == 201
    for sid in ("S002", "S003"):
        name, _, probe = STUDENTS[sid]
        assert checkin(http, g, "ONLINE-1", sid, lfw_bytes(name, probe), kiosk="remote").json()["status"] == "present"
    # Random challenges are scheduled for later, hidden from the student until due.
    from sqlalchemy import select

    from facegate.storage.models import ReverifyChallenge

    with server["service"].ctx.sessions() as s:
        scheduled = list(s.scalars(select(ReverifyChallenge)))
    assert len(scheduled) == 4 and all(c.status == "pending" for c in scheduled)
    assert http.get(f"/galleries/{g}/exam-sessions/ONLINE-1/students/S002/challenges").json() == []
    # Nothing due: a re-verification is refused.
    r = http.post(f"/galleries/{g}/exam-sessions/ONLINE-1/reverify", data={"student_id": "S002"},
                  files={"file": ("w.jpg", lfw_bytes("Naoto_Kan", 3))})
    assert r.status_code == 409
    # The proctor asks now; S002 answers with their face, S003's webcam shows someone else.
    asked = http.post(f"/galleries/{g}/exam-sessions/ONLINE-1/reverify-requests", json={"window_s": 30}).json()
    assert sorted(c["student_id"] for c in asked) == ["S002", "S003"]
    assert len(http.get(f"/galleries/{g}/exam-sessions/ONLINE-1/students/S002/challenges").json()) == 1
    ok = http.post(f"/galleries/{g}/exam-sessions/ONLINE-1/reverify", data={"student_id": "S002"},
                   files={"file": ("w.jpg", lfw_bytes("Naoto_Kan", 1))}).json()
    assert ok["kind"] == "reverify" and ok["status"] == "present"
    bad = http.post(f"/galleries/{g}/exam-sessions/ONLINE-1/reverify", data={"student_id": "S003"},
                    files={"file": ("w.jpg", lfw_bytes("Jean_Chretien", 2))}).json()
    assert bad["status"] == "rejected" and "reverify_failed" in bad["alerts"]
    # A challenge nobody answers: the background worker marks it missed within its window (2 s).
    asked = http.post(f"/galleries/{g}/exam-sessions/ONLINE-1/reverify-requests",
                      json={"students": ["S002"], "window_s": 1}).json()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not alerts_of(http, g, kind="reverify_missed"):
        time.sleep(0.3)
    missed = alerts_of(http, g, kind="reverify_missed")
    assert len(missed) == 1 and missed[0]["subject"] == "S002"
    rows = {r["student_id"]: r for r in http.get(f"/galleries/{g}/exam-sessions/ONLINE-1/attendance",
                                                  params={"format": "json"}).json()}
    assert rows["S002"]["reverify_passed"] == 1 and rows["S002"]["reverify_missed"] == 1
    assert rows["S003"]["reverify_failed"] == 1


# -- 2. alerts to a webhook -------------------------------------------------------------------------
def test_webhook_retries_with_backoff_and_signs(http):
    from facegate.workflows.alerts import verify_signature

    receiver = Receiver(fail_first=2)
    try:
        g = new_gallery(http, "hooked", alert_webhook_url=receiver.url, alert_webhook_secret="s3cret-shared")
        assert http.get(f"/galleries/{g}").json()["settings"]["alert_webhook_secret"] == "***"
        # An access check by an unknown face raises one alert.
        res = http.post(f"/galleries/{g}/access/check", data={"right": "lab:enter"},
                        files={"file": ("door.jpg", lfw_bytes("Jean_Chretien", 2))}).json()
        assert res["granted"] is False and res["alert_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not receiver.accepted:
            time.sleep(0.2)
        time.sleep(2.5)  # long enough for a wrongful extra delivery to show up
        assert len(receiver.requests) == 3, [r["headers"] for r in receiver.requests]
        assert len(receiver.accepted) == 1
        delivered = receiver.accepted[0]
        # Backoff: the second retry waited longer than the first.
        t = [r["at"] for r in receiver.requests]
        assert t[2] - t[1] > t[1] - t[0] > 0.5
        # All three carried the same delivery id; the accepted body is signed with the shared secret.
        assert {r["headers"]["X-FaceGate-Delivery"] for r in receiver.requests} == {str(res["alert_id"])}
        assert verify_signature("s3cret-shared", delivered["headers"]["X-FaceGate-Signature"], delivered["body"])
        assert not verify_signature("wrong", delivered["headers"]["X-FaceGate-Signature"], delivered["body"])
        assert not verify_signature("s3cret-shared", delivered["headers"]["X-FaceGate-Signature"], delivered["body"] + b" ")
        payload = json.loads(delivered["body"])
        assert payload["gallery"] == g and payload["alert"]["kind"] == "access_denied"
        stored = alerts_of(http, g)[0]
        assert stored["delivery_status"] == "delivered" and stored["delivery_attempts"] == 3
    finally:
        receiver.close()


# -- 3. self-service registration and face login ---------------------------------------------------
def test_self_service_registration_and_face_login(http, server):
    g = new_gallery(http, "portal", lockout_failures=3)
    photos = [("files", (f"cam{i}.jpg", lfw_bytes("Tony_Blair", i), "image/jpeg")) for i in (6, 18, 32)]
    form = {"username": "tblair", "password": "correct horse battery", "display_name": "Tony Blair", "consent": "true"}
    # Without consent, with too few photos, with a photo without a face: refused, nothing kept.
    assert http.post(f"/galleries/{g}/accounts", data=dict(form, consent="false"), files=photos).status_code == 400
    assert http.post(f"/galleries/{g}/accounts", data=form, files=photos[:2]).status_code == 400
    bad = http.post(f"/galleries/{g}/accounts", data=dict(form, username="x", password="short"), files=photos)
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    assert {e["field"] for e in bad.json()["errors"]} == {"username", "password"}
    r = http.post(f"/galleries/{g}/accounts", data=form, files=photos[:2] + [("files", ("grey.png", blank_png()))])
    assert r.status_code == 400 and "no face" in r.json()["detail"]
    assert http.get(f"/galleries/{g}/subjects/user:tblair").status_code == 404
    # Registered.
    r = http.post(f"/galleries/{g}/accounts", data=form, files=photos)
    assert r.status_code == 201, r.text
    assert r.json()["accepted_photos"] == 3
    assert http.post(f"/galleries/{g}/accounts", data=form, files=photos).status_code == 409
    # The password is stored as an argon2id hash, the consent with its time.
    from sqlalchemy import select

    from facegate.storage.models import Account

    with server["service"].ctx.sessions() as s:
        account = s.scalar(select(Account).where(Account.username == "tblair"))
    assert account.password_hash.startswith("$argon2id$") and "correct horse" not in account.password_hash
    assert account.consent_at is not None and account.consent_text

    # Face alone.
    r = http.post(f"/galleries/{g}/login/face", files={"file": ("me.jpg", lfw_bytes("Tony_Blair", 48))})
    assert r.status_code == 200, r.text
    login = r.json()
    assert login["authenticated"] and login["username"] == "tblair" and login["score"] >= login["threshold"]
    claims = http.get("/auth/session", headers={"X-Session-Token": login["token"]}).json()
    assert claims["username"] == "tblair" and claims["method"] == "face"
    expires = dt.datetime.fromisoformat(claims["expires_at"])
    assert dt.timedelta(minutes=55) < expires - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=60)
    # A forged token (another key) and an expired one are refused.
    forged = jwt.encode({"sub": "tblair", "gal": g, "amr": "face", "iat": 0, "exp": 2**31}, "an-attacker-key-of-forty-bytes-length-xx", algorithm="HS256")
    assert http.get("/auth/session", headers={"X-Session-Token": forged}).status_code == 401
    # Strangers' faces: 401 naming nobody (not the closest account), and, being no near miss of
    # tblair's face, not counted toward the only account's lockout (3 failures).
    for stranger, index in [("Jean_Chretien", 2), ("George_W_Bush", 7), ("Colin_Powell", 38)]:
        r = http.post(f"/galleries/{g}/login/face", files={"file": ("x.jpg", lfw_bytes(stranger, index))})
        assert r.status_code == 401 and r.json()["authenticated"] is False and r.json()["token"] is None
        assert r.json()["username"] is None and r.json()["locked"] is False
    assert not [a for a in alerts_of(http, g) if a["kind"] == "lockout"]

    # Username + password + face.
    def two_factor(password: str, photo: bytes):
        return http.post(f"/galleries/{g}/login", data={"username": "tblair", "password": password},
                         files={"file": ("me.jpg", photo)})

    r = two_factor("correct horse battery", lfw_bytes("Tony_Blair", 53))
    assert r.status_code == 200 and r.json()["method"] == "password+face"
    # Right password, wrong face; wrong password: each a failure toward the lockout (3).
    assert two_factor("correct horse battery", lfw_bytes("Jean_Chretien", 6)).status_code == 401
    assert two_factor("wrong password!", lfw_bytes("Tony_Blair", 53)).status_code == 401
    assert not [a for a in alerts_of(http, g) if a["kind"] == "lockout"]
    r = two_factor("wrong again!", lfw_bytes("Tony_Blair", 53))
    assert r.status_code == 401 and r.json()["locked"] is True
    # The lock holds the username as tried from this key only: whoever guessed from here is
    # refused, while the person (face login, or another device's key) is not locked out.
    locked = [a for a in alerts_of(http, g) if a["kind"] == "lockout"]
    assert locked and locked[0]["subject"].startswith("user:tblair from key "), locked[0]["subject"]
    r = two_factor("correct horse battery", lfw_bytes("Tony_Blair", 53))
    assert r.status_code == 423 and r.json()["code"] == "locked_out"
    r = http.post(f"/galleries/{g}/login/face", files={"file": ("me.jpg", lfw_bytes("Tony_Blair", 48))})
    assert r.status_code == 200
    other_key = http.post("/keys", json={"name": "other kiosk", "scopes": ["recognize"]}).json()["secret"]
    r = http.post(f"/galleries/{g}/login", data={"username": "tblair", "password": "correct horse battery"},
                  files={"file": ("me.jpg", lfw_bytes("Tony_Blair", 53))}, headers={"X-API-Key": other_key})
    assert r.status_code == 200, r.text
    from urllib.parse import quote

    assert http.delete(f"/galleries/{g}/lockouts/{quote(locked[0]['subject'])}").status_code == 200
    assert two_factor("correct horse battery", lfw_bytes("Tony_Blair", 53)).status_code == 200


def test_a_self_enrolled_student_checks_in_with_their_username(http):
    """A student who enrolled on the enrollment page with their student number as username
    (subject ``user:<number>``) checks in with that number; attendance lists them by it."""
    g = new_gallery(http, "selfexam")
    photos = [("files", (f"cam{i}.jpg", lfw_bytes("Tony_Blair", i), "image/jpeg")) for i in (6, 18, 32)]
    form = {"username": "S777", "password": "correct horse battery", "display_name": "Tony Blair", "consent": "true"}
    assert http.post(f"/galleries/{g}/accounts", data=form, files=photos).status_code == 201
    session = {"code": "self-1", "course": "CS1", "starts_at": (NOW - dt.timedelta(minutes=5)).isoformat(),
               "ends_at": (NOW + dt.timedelta(hours=1)).isoformat()}  # expected: every subject of the gallery
    assert http.post(f"/galleries/{g}/exam-sessions", json=session).status_code == 201
    res = checkin(http, g, "self-1", "S777", lfw_bytes("Tony_Blair", 48)).json()
    assert res["status"] == "present" and res["student_id"] == "S777", res
    res = checkin(http, g, "self-1", "S778", lfw_bytes("Tony_Blair", 48)).json()
    assert res["status"] == "unknown_id"
    rows = http.get(f"/galleries/{g}/exam-sessions/self-1/attendance", params={"format": "json"}).json()
    by_id = {r["student_id"]: r for r in rows}
    assert by_id["S777"]["status"] == "present" and by_id["S777"]["name"] == "Tony Blair"
    assert "user:S777" not in by_id


def test_face_only_failure_counts_toward_an_account_only_for_a_near_miss(tmp_path):
    """The rule behind the lockout of face-only logins, at scores either side of the near-miss
    threshold (the identify threshold at the gallery's ``login_near_miss_fpir``)."""
    from facegate.config import Settings
    from facegate.gallery.context import find_gallery
    from facegate.gallery.schemas import Candidate, DetectedFace, GallerySettings, IdentifiedFace
    from facegate.gallery.service import SYSTEM, GalleryService
    from facegate.gallery.thresholds import identify_threshold
    from facegate.workflows import Workflows

    service = GalleryService(settings=Settings(data_dir=tmp_path / "data"), migrate=True)
    try:
        accounts = Workflows(service).accounts
        service.create_gallery("portal", settings=GallerySettings(login_near_miss_fpir=0.1), principal=SYSTEM)
        with service.ctx.sessions() as session:
            gallery = find_gallery(session, "portal", SYSTEM)
            near = identify_threshold(service.ctx, gallery, 3, fpir=0.1).threshold
            match = identify_threshold(service.ctx, gallery, 3).threshold
        assert 0 < near < match  # a looser rate, a lower score

        def face(subject: str, score: float) -> IdentifiedFace:
            box = DetectedFace(box=[0, 0, 100, 100], score=0.9, landmarks=None, quality={})
            return IdentifiedFace(face=box, decision="unknown", subject=None, score=score,
                                  candidates=[Candidate(subject=subject, display_name="", score=score)])

        assert accounts._near_miss(gallery, face("user:tblair", near + 0.01), 3) == "tblair"
        assert accounts._near_miss(gallery, face("user:tblair", near - 0.01), 3) is None
        assert accounts._near_miss(gallery, face("S001", match - 0.01), 3) is None  # a student, no account
    finally:
        service.close()


# -- 4. team access rights ---------------------------------------------------------------------------
def test_team_access_rights(http):
    g = new_gallery(http, "lab")
    members = {"alice": ("Roger_Federer", ["lab:enter", "lab:open-freezer"]), "bob": ("William_Macy", ["office:*"])}
    for ext, (name, rights) in members.items():
        r = http.post(f"/galleries/{g}/members", json={"external_id": ext, "display_name": name, "rights": rights})
        assert r.status_code == 201, r.text
        enroll = http.post(f"/galleries/{g}/subjects/{ext}/enroll",
                           files=[("files", ("a.jpg", lfw_bytes(name, STUDENTS_BY_NAME[name][0])))])
        assert enroll.json()["accepted"] == 1
    assert http.post(f"/galleries/{g}/members", json={"external_id": "eve", "rights": ["bad right!"]}).status_code == 400

    def check(name: str, right: str | None):
        return http.post(f"/galleries/{g}/access/check", data={"right": right or "", "where": "lab door"},
                         files={"file": ("door.jpg", lfw_bytes(name, STUDENTS_BY_NAME.get(name, (2, 2))[1]))}).json()

    yes = check("Roger_Federer", "lab:enter")
    assert yes["granted"] and yes["subject"] == "alice" and "lab:enter" in yes["rights"] and yes["score"] >= yes["threshold"]
    assert yes["alert_id"] is None
    no_right = check("Roger_Federer", "office:enter")
    assert not no_right["granted"] and no_right["subject"] == "alice" and "lacks" in no_right["reason"]
    wildcard = check("William_Macy", "office:enter")
    assert wildcard["granted"] and wildcard["subject"] == "bob"
    stranger = check("Jean_Chretien", "lab:enter")
    assert not stranger["granted"] and stranger["subject"] is None and "unknown" in stranger["reason"]
    denied = alerts_of(http, g, kind="access_denied")
    assert {a["id"] for a in denied} == {no_right["alert_id"], stranger["alert_id"]}
    # Rights changed by the lead take effect at once.
    http.put(f"/galleries/{g}/members/alice/rights", json={"rights": ["office:enter"]})
    assert check("Roger_Federer", "office:enter")["granted"]
    assert not check("Roger_Federer", "lab:enter")["granted"]


STUDENTS_BY_NAME = {name: (enrolled, probe) for name, enrolled, probe in STUDENTS.values()}


# -- 5. two server processes admitting the same student ----------------------------------------------
def test_admission_is_unique_across_processes(backend, request, tmp_path):
    """Another process admits the student between this one's read and write: the partial unique
    index refuses the second admission and the retry records a duplicate, with its alert."""
    from sqlalchemy import event, func, insert, select

    from facegate.config import Settings
    from facegate.gallery.service import GalleryService, PhotoInput
    from facegate.storage.models import AttendanceEvent, ExamSession
    from facegate.workflows import Workflows
    from facegate.workflows.exam import ExamSessionIn

    url = fresh_database_url(backend, tmp_path, request, prefix="facegate_race")
    key = "Zm9yLXRoZS10d28tcHJvY2Vzc2VzLW9mLXRoaXMtdGU="  # processes of one database share its template key
    service = GalleryService(settings=Settings(data_dir=tmp_path / "data", database_url=url, template_key=key),
                             migrate=True)
    other_process = GalleryService(settings=Settings(data_dir=tmp_path / "data2", database_url=url, template_key=key),
                                   migrate=False)
    try:
        wf = Workflows(service)
        service.create_gallery("race", principal=SYSTEM)
        name, enrolled, probe = STUDENTS["S002"]
        assert service.enroll("race", "S002", [PhotoInput("a.jpg", lfw_bytes(name, enrolled))], principal=SYSTEM).accepted == 1
        wf.exams.create_session("race", ExamSessionIn(code="R1", course="C", starts_at=NOW - dt.timedelta(minutes=1),
                                                      ends_at=NOW + dt.timedelta(hours=1)), principal=SYSTEM)
        competed = []

        def admit_elsewhere(session, flush_context, instances):
            if competed or not any(isinstance(o, AttendanceEvent) and o.status == "present" for o in session.new):
                return
            competed.append(True)
            with other_process.ctx.sessions.begin() as other:
                exam_id = other.scalar(select(ExamSession.id).where(ExamSession.code == "R1"))
                other.execute(insert(AttendanceEvent).values(
                    session_id=exam_id, student_id="S002", kind="checkin", status="present", kiosk="other-process",
                    details={}, created_at=NOW))

        event.listen(service.ctx.sessions, "before_flush", admit_elsewhere)
        try:
            result = wf.exams.checkin("race", "R1", "S002", PhotoInput("live.jpg", lfw_bytes(name, probe)), kiosk="here",
                                      principal=SYSTEM)
        finally:
            event.remove(service.ctx.sessions, "before_flush", admit_elsewhere)
        assert competed == [True]
        assert result.status == "duplicate" and result.alerts == ["duplicate_checkin"] and not result.admitted
        with service.ctx.sessions() as s:
            admitted = s.scalar(select(func.count(AttendanceEvent.id)).where(AttendanceEvent.status == "present"))
            kiosks = sorted(s.scalars(select(AttendanceEvent.kiosk)))
        assert admitted == 1 and kiosks == ["here", "other-process"]
    finally:
        other_process.close()
        service.close()
