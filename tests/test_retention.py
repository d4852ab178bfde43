"""Retention: probe templates and decisions older than a gallery's settings are dropped, the
rest kept; 0 keeps everything."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update

from facegate.security import SYSTEM
from tests.conftest import package_photo


def test_old_probes_and_decisions_go_new_ones_stay(tmp_path):
    from facegate.config import Settings
    from facegate.gallery.inputs import PhotoInput
    from facegate.gallery.retention import apply_retention
    from facegate.gallery.schemas import GallerySettings
    from facegate.gallery.service import GalleryService
    from facegate.storage.models import Decision

    service = GalleryService(Settings(data_dir=tmp_path / "data"), migrate=True)
    try:
        photo = PhotoInput("yao.jpg", package_photo("yaoming.jpg").read_bytes())
        service.create_gallery("short", settings=GallerySettings(probe_retention_days=10, decision_retention_days=100),
                               principal=SYSTEM)
        service.create_gallery("forever", settings=GallerySettings(probe_retention_days=0, decision_retention_days=0),
                               principal=SYSTEM)
        for g in ("short", "forever"):
            service.enroll(g, "yao", [photo], principal=SYSTEM)
            for _ in range(3):
                service.verify(g, "yao", photo, principal=SYSTEM)
        now = dt.datetime.now(dt.UTC)
        with service.ctx.sessions.begin() as s:
            ids = s.scalars(select(Decision.id).where(Decision.kind == "verify").order_by(Decision.id)).all()
            # Per gallery: one decision 200 days old, one 50 days old, one new.
            for offset, age in ((0, 200), (1, 50), (3, 200), (4, 50)):
                s.execute(update(Decision).where(Decision.id == ids[offset])
                          .values(created_at=now - dt.timedelta(days=age)))
        counts = apply_retention(service.ctx, now)
        assert counts["decisions_deleted"] == 1 and counts["probes_dropped"] == 1, counts
        with service.ctx.sessions() as s:
            def verify_rows(gallery_name):
                from facegate.gallery.context import find_gallery

                g = find_gallery(s, gallery_name, SYSTEM)
                return s.execute(select(Decision.created_at, Decision.probe).where(
                    Decision.gallery_id == g.id, Decision.kind == "verify").order_by(Decision.created_at)).all()

            short = verify_rows("short")
            assert len(short) == 2 and short[0].probe is None and short[1].probe is not None
            forever = verify_rows("forever")
            assert len(forever) == 3 and all(r.probe is not None for r in forever)
            assert s.scalar(select(func.count(Decision.id))) >= 5
    finally:
        service.close()
