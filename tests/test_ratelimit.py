"""Rate limits answer 429 with Retry-After: failed authentications per client address, and
the recognition routes per key; other clients and other routes are not affected."""

from __future__ import annotations

from facegate.security import SYSTEM
from tests.conftest import package_photo


def _app(tmp_path, **limits):
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    service = GalleryService(Settings(data_dir=tmp_path / "data", background_worker=False, **limits), migrate=True)
    service.create_gallery("g", principal=SYSTEM)
    return service, create_app(service)


def test_guessing_keys_is_stopped_per_address(tmp_path):
    from fastapi.testclient import TestClient

    service, app = _app(tmp_path, rate_limit_auth_failures="5/minute")
    key = service.create_api_key("admin", ["admin"], principal=SYSTEM).secret
    try:
        with TestClient(app) as client:
            codes = [client.get("/api/v1/galleries", headers={"X-API-Key": f"fg_made_up_{i}"}).status_code
                     for i in range(8)]
            assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3
            refused = client.get("/api/v1/galleries", headers={"X-API-Key": "fg_made_up_x"})
            assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
            assert refused.json()["code"] == "rate_limited"
            assert refused.headers["X-Content-Type-Options"] == "nosniff"
            # A person at the same address with a valid key is not locked out; the pages work.
            assert client.get("/api/v1/galleries", headers={"X-API-Key": key}).status_code == 200
            assert client.get("/admin").status_code == 200
            # Password logins from that address are refused before the (slow) password check.
            r = client.post("/api/v1/auth/operator/login", json={"username": "admin", "password": "x" * 12})
            assert r.status_code == 429
    finally:
        service.close()


def test_recognition_routes_are_limited_per_key(tmp_path):
    from fastapi.testclient import TestClient

    service, app = _app(tmp_path, rate_limit_recognition="3/minute")
    one = service.create_api_key("one", ["recognize"], principal=SYSTEM).secret
    two = service.create_api_key("two", ["recognize"], principal=SYSTEM).secret
    photo = package_photo("yaoming.jpg").read_bytes()
    try:
        with TestClient(app) as client:
            def identify(key: str) -> int:
                return client.post("/api/v1/galleries/g/identify", headers={"X-API-Key": key},
                                   files={"file": ("p.jpg", photo, "image/jpeg")}).status_code

            assert [identify(one) for _ in range(4)] == [200, 200, 200, 429]
            assert identify(two) == 200  # another key has its own allowance
            assert client.get("/api/v1/galleries/g", headers={"X-API-Key": one}).status_code in (200, 403)
    finally:
        service.close()


def test_limits_can_be_turned_off(tmp_path):
    from fastapi.testclient import TestClient

    service, app = _app(tmp_path, rate_limit_auth_failures="2/minute", rate_limit_enabled=False)
    try:
        with TestClient(app) as client:
            codes = {client.get("/api/v1/galleries", headers={"X-API-Key": "fg_x"}).status_code for _ in range(5)}
            assert codes == {401}
    finally:
        service.close()


def test_metrics_are_for_this_machine_or_a_token(tmp_path):
    """/metrics: loopback clients only by default; anyone with the token when one is set."""
    from fastapi.testclient import TestClient

    service, app = _app(tmp_path)
    try:
        with TestClient(app, client=("127.0.0.1", 50000)) as local:
            assert local.get("/metrics").status_code == 200
        with TestClient(app, client=("203.0.113.5", 50000)) as remote:
            assert remote.get("/metrics").status_code == 403
    finally:
        service.close()
    service, app = _app(tmp_path / "t", metrics_token="s3cret-scrape-token")
    try:
        with TestClient(app, client=("203.0.113.5", 50000)) as remote:
            assert remote.get("/metrics").status_code == 401
            assert remote.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
            ok = remote.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape-token"})
            assert ok.status_code == 200 and "facegate_" in ok.text
    finally:
        service.close()


def test_a_body_that_stops_arriving_is_cut_off(tmp_path):
    """A real server: the headers promise 100 kB, 10 bytes come, then nothing: 408 within the
    body timeout, not a connection held for ever."""
    import socket
    import time

    from tests.api_fixtures import ServerThread

    service, app = _app(tmp_path, body_timeout_s=1.0)
    runner = ServerThread(app)
    runner.start()
    try:
        host, port = runner.base_url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /api/v1/galleries/g/identify HTTP/1.1\r\nHost: x\r\nX-API-Key: fg_x\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")
            start = time.monotonic()
            answer = sock.recv(4096)
            waited = time.monotonic() - start
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert waited < 8
    finally:
        runner.stop()
        service.close()
