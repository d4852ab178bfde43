"""The gallery version and template count kept by the database (migration 0006), on both backends.

Every template write bumps ``galleries.template_version`` and keeps ``template_count`` exact in
the same statement, whichever path wrote it (ORM, bulk insert, a subject's cascade, a gallery's
delete), and ``template_changes`` logs what changed at which version: what a worker's index
catches up from.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from facegate.config import Settings
from facegate.gallery.service import GalleryService
from facegate.security import SYSTEM
from facegate.storage.models import FaceTemplate, Gallery, TemplateChange
from tests.api_fixtures import BACKENDS, fresh_database_url, pg_server  # noqa: F401 - fixture


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 512)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=BACKENDS)
def service(request, tmp_path):
    url = fresh_database_url(request.param, tmp_path, request, prefix="version")
    svc = GalleryService(Settings(data_dir=tmp_path / "data", database_url=url), migrate=True)
    yield svc
    svc.close()


def _state(svc: GalleryService, name: str) -> tuple[int, int, int]:
    """(version, count kept by the triggers, count of rows really there)."""
    with svc.ctx.sessions() as session:
        g = session.scalar(select(Gallery).where(Gallery.name == name))
        assert g is not None
        real = session.scalar(select(func.count()).select_from(FaceTemplate).where(FaceTemplate.gallery_id == g.id))
        return int(g.template_version), int(g.template_count), int(real or 0)


def _log(svc: GalleryService, gallery_id: int, after: int) -> list[tuple[int, int, str]]:
    with svc.ctx.sessions() as session:
        rows = session.execute(
            select(TemplateChange.version, TemplateChange.template_id, TemplateChange.op)
            .where(TemplateChange.gallery_id == gallery_id, TemplateChange.version > after)
            .order_by(TemplateChange.version, TemplateChange.id)
        ).all()
        return [(int(v), int(t), str(o)) for v, t, o in rows]


def test_every_template_write_bumps_the_version_and_keeps_the_count(service):
    svc = service
    g = svc.create_gallery("v", principal=SYSTEM)
    other = svc.create_gallery("other", principal=SYSTEM)
    v0, count0, _ = _state(svc, "v")
    assert count0 == 0

    # A bulk insert of many rows in one statement.
    rows = [(f"p{i % 7}", "", vec) for i, vec in enumerate(_vectors(40))]
    svc.import_templates("v", rows, principal=SYSTEM)
    v1, count1, real1 = _state(svc, "v")
    assert v1 > v0 and count1 == real1 == 40
    added = _log(svc, g.id, v0)
    assert sorted(t for _, t, op in added if op == "add") == sorted(
        _ids(svc, g.id)
    ), "every inserted template is logged once as added"

    # Another gallery's writes leave this one's version alone.
    svc.import_templates("other", [("x", "", _vectors(1, 5)[0])], principal=SYSTEM)
    assert _state(svc, "v")[:2] == (v1, 40)
    assert _state(svc, "other")[1] == 1

    # Deleting a subject removes its templates by cascade: counted and logged.
    gone = _ids(svc, g.id, subject="p3")
    assert gone
    svc.delete_subject("v", "p3", principal=SYSTEM)
    v2, count2, real2 = _state(svc, "v")
    assert v2 > v1 and count2 == real2 == 40 - len(gone)
    assert sorted(t for _, t, op in _log(svc, g.id, v1) if op == "remove") == sorted(gone)

    # A raw DELETE statement, outside the service, is counted the same way.
    with svc.ctx.sessions.begin() as session:
        victim = session.scalar(select(FaceTemplate.id).where(FaceTemplate.gallery_id == g.id).limit(1))
        session.execute(delete(FaceTemplate).where(FaceTemplate.id == victim))
    v3, count3, real3 = _state(svc, "v")
    assert v3 > v2 and count3 == real3 == count2 - 1

    # Deleting a gallery takes its templates along without disturbing the other's counters.
    svc.delete_gallery("v", principal=SYSTEM)
    assert _state(svc, "other")[1:] == (1, 1)
    assert other.id != g.id


def test_a_rolled_back_write_changes_nothing(service):
    svc = service
    g = svc.create_gallery("r", principal=SYSTEM)
    svc.import_templates("r", [("a", "", _vectors(1)[0])], principal=SYSTEM)
    before = _state(svc, "r")
    with svc.ctx.sessions() as session:
        session.execute(delete(FaceTemplate).where(FaceTemplate.gallery_id == g.id))
        session.rollback()
    assert _state(svc, "r") == before
    assert len(_log(svc, g.id, before[0])) == 0


def _ids(svc: GalleryService, gallery_id: int, subject: str | None = None) -> list[int]:
    from facegate.storage.models import Subject

    with svc.ctx.sessions() as session:
        query = select(FaceTemplate.id).where(FaceTemplate.gallery_id == gallery_id)
        if subject is not None:
            query = query.join(Subject, Subject.id == FaceTemplate.subject_id).where(Subject.external_id == subject)
        return [int(i) for i in session.scalars(query)]


def test_a_search_behind_a_pruned_change_log_reloads_the_gallery(tmp_path):
    """Retention drops the change log after a week; an index that old cannot catch up from it
    and reads the gallery again: the answer is still current."""
    import datetime as dt

    from facegate.gallery.retention import apply_retention

    svc = GalleryService(Settings(data_dir=tmp_path / "data", ann_min_templates=10**9), migrate=True)
    try:
        g = svc.create_gallery("p", principal=SYSTEM)
        vectors = _vectors(3, seed=4)
        svc.import_templates("p", [("a", "", vectors[0])], principal=SYSTEM)
        with svc.ctx.sessions() as session:
            assert svc.ctx.search.search(session, g.id, "arcface", vectors[:1], k=1)[0][0].score > 0.999
        svc.import_templates("p", [("b", "", vectors[1])], principal=SYSTEM)
        counts = apply_retention(svc.ctx, now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=8))
        assert counts["template_changes_deleted"] >= 2 and _log(svc, g.id, 0) == []
        with svc.ctx.sessions() as session:
            hit = svc.ctx.search.search(session, g.id, "arcface", vectors[1:2], k=1)[0][0]
        assert hit.score > 0.999, "the change made after the cache's version was lost"
    finally:
        svc.close()
