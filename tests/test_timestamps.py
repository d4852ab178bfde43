"""Every time the API returns carries its zone, on SQLite too (which stores none): a
``date-time`` as the OpenAPI schema promises, never a naive local-looking string."""

from __future__ import annotations

import datetime as dt

from facegate.security import SYSTEM


def test_times_come_back_aware_from_sqlite(tmp_path):
    from fastapi.testclient import TestClient

    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.context import find_gallery
    from facegate.gallery.service import GalleryService
    from facegate.workflows import Workflows

    service = GalleryService(Settings(data_dir=tmp_path / "data", background_worker=False), migrate=True)
    try:
        service.create_gallery("g", principal=SYSTEM)
        with service.ctx.sessions.begin() as s:
            Workflows(service).alerts.raise_alert(s, find_gallery(s, "g", SYSTEM), "test", "a test alert")
        key = service.create_api_key("admin", ["admin"], principal=SYSTEM).secret
        with TestClient(create_app(service)) as client:
            client.headers["X-API-Key"] = key
            stamps = [client.get("/api/v1/galleries/g").json()["created_at"],
                      client.get("/api/v1/galleries/g/alerts").json()["items"][0]["created_at"],
                      client.get("/api/v1/keys").json()[0]["created_at"]]
        for stamp in stamps:
            parsed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            assert parsed.tzinfo is not None and parsed.utcoffset() == dt.timedelta(0), stamp
            assert abs(parsed - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    finally:
        service.close()
