"""Bulk template imports and whole-gallery reads on PostgreSQL go through binary COPY: the
vectors arrive exactly, the gallery version moves once for the whole import (the statement
trigger fires once for a COPY), the change log holds every template, a duplicate import fails
whole, and the read gives what the ORM reads."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from facegate.config import Settings
from facegate.gallery.service import GalleryService
from facegate.security import SYSTEM
from facegate.storage.gallery_changes import gallery_state
from facegate.storage.models import FaceTemplate, TemplateChange
from facegate.storage.pg_copy import read_templates
from tests.api_fixtures import fresh_database_url, pg_server  # noqa: F401 - fixture


@pytest.fixture
def service(request, tmp_path):
    url = fresh_database_url("postgresql", tmp_path, request, prefix="pgcopy")
    svc = GalleryService(Settings(data_dir=tmp_path / "data", database_url=url), migrate=True)
    yield svc
    svc.close()


def test_an_import_is_one_copy_with_exact_vectors_one_version_and_a_full_change_log(service):
    gallery = service.create_gallery("g", principal=SYSTEM).id
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((3000, 512)).astype(np.float32) * 3  # not unit length: normalised on the way
    rows = [(f"s{i % 1000}", f"Person {i % 1000}", vectors[i]) for i in range(3000)]
    with service.ctx.sessions() as session:
        before = gallery_state(session, gallery)
    assert service.import_templates("g", rows, principal=SYSTEM) == 3000
    with service.ctx.sessions() as session:
        after = gallery_state(session, gallery)
        assert (after.count, after.version) == (3000, before.version + 1)  # one statement
        logged = session.scalar(
            select(func.count()).select_from(TemplateChange).where(
                TemplateChange.gallery_id == gallery, TemplateChange.op == "add"
            )
        )
        assert logged == 3000
        orm = session.execute(
            select(FaceTemplate.id, FaceTemplate.subject_id, FaceTemplate.vector)
            .where(FaceTemplate.gallery_id == gallery).order_by(FaceTemplate.id)
        ).all()
        ids, subjects, matrix = read_templates(session, gallery)
    assert ids.tolist() == [r[0] for r in orm] and subjects.tolist() == [r[1] for r in orm]
    assert matrix.dtype == np.float32 and matrix.shape == (3000, 512)
    unit = np.stack([v / max(float(np.linalg.norm(v)), 1e-12) for v in vectors])  # as the import does
    assert np.array_equal(matrix, unit)  # binary float32: bit for bit what was imported
    assert np.abs(np.stack([r[2] for r in orm]) - unit).max() < 1e-6
    assert len(set(subjects.tolist())) == 1000


def test_a_duplicate_import_fails_whole_and_leaves_the_gallery_as_it_was(service):
    gallery = service.create_gallery("g", principal=SYSTEM).id
    rows = [(f"s{i}", "", np.random.default_rng(i).standard_normal(512).astype(np.float32)) for i in range(50)]
    service.import_templates("g", rows, source="batch-1", principal=SYSTEM)
    with service.ctx.sessions() as session:
        before = gallery_state(session, gallery)
    with pytest.raises(IntegrityError):
        service.import_templates("g", [*rows, ("new", "", rows[0][2] * 2)], source="batch-1", principal=SYSTEM)
    with service.ctx.sessions() as session:
        assert gallery_state(session, gallery) == before
        assert len(read_templates(session, gallery)[0]) == 50


def test_an_empty_gallery_reads_as_empty_arrays(service):
    gallery = service.create_gallery("g", principal=SYSTEM).id
    with service.ctx.sessions() as session:
        ids, subjects, matrix = read_templates(session, gallery)
    assert ids.shape == subjects.shape == (0,) and matrix.shape == (0, 0)
