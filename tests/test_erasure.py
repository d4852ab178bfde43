"""Erasure that really erases: after a subject is deleted, the database files (main file and
WAL, read as raw bytes) hold neither its id nor its template or probe bytes, while the
decisions about it stay in the audit trail under a pseudonym."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sqlalchemy import func, select

from facegate.security import SYSTEM
from tests.api_fixtures import pg_server  # noqa: F401 - a fixture, used by name
from tests.conftest import package_photo

SUBJECT = "erase-me-Z9q"
OTHER = "keep-me-K7"


def _vectors(service, model, column, where) -> list[bytes]:
    with service.ctx.sessions() as s:
        return [np.asarray(v, dtype="<f4").tobytes() for v in s.scalars(select(column).where(where)) if v is not None]


def _files(db_path) -> bytes:
    data = db_path.read_bytes()
    for extra in (db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-journal")):
        if extra.exists():
            data += extra.read_bytes()
    return data


def test_deleting_a_subject_leaves_no_trace_in_the_sqlite_files(tmp_path):
    from facegate.config import Settings
    from facegate.gallery.inputs import PhotoInput
    from facegate.gallery.schemas import GallerySettings
    from facegate.gallery.service import GalleryService
    from facegate.storage.models import Decision, FaceTemplate
    from facegate.workflows import Workflows
    from facegate.workflows.exam import ExamSessionIn

    db_path = tmp_path / "facegate.db"
    # Sealing off: the erasure itself must leave nothing, even where the bytes are plain.
    service = GalleryService(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{db_path}",
                                      encrypt_templates=False), migrate=True)
    yao = PhotoInput("yao.jpg", package_photo("yaoming.jpg").read_bytes())
    players = PhotoInput("players.jpg", package_photo("players.jpg").read_bytes())
    try:
        service.create_gallery("g", settings=GallerySettings(store_crops=True, lockout_failures=50), principal=SYSTEM)
        assert service.enroll("g", SUBJECT, [yao], display_name="Erase Me", principal=SYSTEM).accepted == 1
        # Decisions about the subject, with probe templates; an exam with attendance and an alert.
        service.verify("g", SUBJECT, players, principal=SYSTEM)
        service.identify("g", players, principal=SYSTEM)
        wf = Workflows(service)
        now = dt.datetime.now(dt.UTC)
        wf.exams.create_session("g", ExamSessionIn(code="E1", course="C", starts_at=now, ends_at=now + dt.timedelta(hours=1),
                                                   students=[SUBJECT, OTHER]), principal=SYSTEM)
        assert wf.exams.checkin("g", "E1", SUBJECT, yao, principal=SYSTEM).status == "present"
        # A mismatch: SUBJECT's face presented for an id that is not enrolled → an alert naming nobody
        # else; and one for SUBJECT with a face without a match → a failed attempt recorded.
        wf.exams.checkin("g", "E1", OTHER, yao, principal=SYSTEM)
        templates = _vectors(service, FaceTemplate, FaceTemplate.vector, FaceTemplate.id > 0)
        probes = _vectors(service, Decision, Decision.probe, Decision.subject_external_id == SUBJECT)
        assert templates and probes
        with service.ctx.sessions() as s:
            decisions_before = s.scalar(select(func.count(Decision.id)))
        # Before: the id and the template are in the files (the test can see them).
        with service.ctx.db.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        before = _files(db_path)
        assert SUBJECT.encode() in before and templates[0] in before

        assert service.delete_subject("g", SUBJECT, principal=SYSTEM) == 1
        with service.ctx.sessions() as s:
            assert s.scalar(select(func.count(Decision.id))) >= decisions_before  # the trail stays
            kept = s.scalars(select(Decision.subject_external_id).where(Decision.subject_external_id.like("erased:%"))).all()
            assert kept, "the decisions about the subject are kept under a pseudonym"
    finally:
        service.close()
    after = _files(db_path)
    assert SUBJECT.encode() not in after
    assert b"Erase Me" not in after
    for vector in templates + probes:
        assert vector not in after
    # Another subject's data is untouched by the scrub.
    assert OTHER.encode() in after


def test_pseudonyms_replace_whole_ids_only():
    from facegate.gallery.erasure import _scrub, pseudonym

    alias = pseudonym(1, "S1")
    assert alias.startswith("erased:") and alias == pseudonym(1, "S1") != pseudonym(2, "S1")
    scrubbed = _scrub({"text": "S1 failed; S10 passed", "ids": ["S1", "S10", "xS1"]}, ("S1",), alias)
    assert scrubbed == {"text": f"{alias} failed; S10 passed", "ids": [alias, "S10", "xS1"]}


@pytest.mark.parametrize("_", [None])
def test_secure_delete_is_on_for_every_connection(tmp_path, _):
    from facegate.storage.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    engine.dispose()


def _pg_files(service, table: str) -> bytes:
    """The raw bytes of a PostgreSQL table's files (heap, TOAST, indexes), after a checkpoint
    has written every page."""
    from pathlib import Path

    with service.ctx.db.connect() as c:
        c.exec_driver_sql("CHECKPOINT")
        datadir = Path(c.exec_driver_sql("SHOW data_directory").scalar())
        rels = c.exec_driver_sql(
            "SELECT pg_relation_filepath(oid) FROM pg_class WHERE oid = %(t)s::regclass "
            "OR oid = (SELECT reltoastrelid FROM pg_class WHERE oid = %(t)s::regclass) "
            "OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = %(t)s::regclass "
            "  OR indrelid = (SELECT reltoastrelid FROM pg_class WHERE oid = %(t)s::regclass))",
            {"t": table},
        ).scalars().all()
    data = b""
    for rel in rels:
        for path in sorted(datadir.glob(rel + "*")):
            data += path.read_bytes()
    return data


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    from tests.api_fixtures import fresh_database_url

    return fresh_database_url(request.param, tmp_path, request, prefix="facegate_erase")


def test_no_row_of_any_table_names_an_erased_subject(database_url, tmp_path):
    """On both backends: after the delete, no row of any table holds the id or a probe of the
    subject (PostgreSQL's dead row versions are then removed by the VACUUM the erasure runs)."""

    from facegate.config import Settings
    from facegate.gallery.inputs import PhotoInput
    from facegate.gallery.service import GalleryService
    from facegate.storage.models import Base, Decision, FaceTemplate
    from facegate.workflows import Workflows

    service = GalleryService(Settings(data_dir=tmp_path / "data", database_url=database_url), migrate=True)
    try:
        yao = PhotoInput("yao.jpg", package_photo("yaoming.jpg").read_bytes())
        players = PhotoInput("players.jpg", package_photo("players.jpg").read_bytes())
        service.create_gallery("g", principal=SYSTEM)
        service.enroll("g", SUBJECT, [yao], principal=SYSTEM)
        template = _vectors(service, None, FaceTemplate.vector, FaceTemplate.id > 0)[0]
        if service.ctx.db.dialect.name == "postgresql":  # the search below can see the bytes
            assert template[:256] in _pg_files(service, "face_templates")  # TOAST splits it in chunks
        service.verify("g", SUBJECT, players, principal=SYSTEM)
        service.identify("g", players, principal=SYSTEM)
        wf = Workflows(service)
        with service.ctx.sessions.begin() as s:
            from facegate.gallery.context import find_gallery

            g = find_gallery(s, "g", SYSTEM)
            wf.lockout.record_failure(s, g, SUBJECT, "rejected")
            wf.alerts.raise_alert(s, g, "mismatch", f"face does not match {SUBJECT}", subject=SUBJECT)
        service.delete_subject("g", SUBJECT, principal=SYSTEM)
        with service.ctx.db.connect() as c:
            for table in Base.metadata.sorted_tables:
                for row in c.execute(table.select()):
                    assert SUBJECT not in repr(tuple(row)), (table.name, row)
        with service.ctx.sessions() as s:
            left = s.scalars(select(Decision).where(Decision.subject_external_id.like("erased:%"))).all()
            assert left and all(d.probe is None for d in left)
        if service.ctx.db.dialect.name == "postgresql":
            after = _pg_files(service, "face_templates")
            assert template[:256] not in after and template[-256:] not in after, "the template's bytes are still in PostgreSQL's files after VACUUM"
    finally:
        service.close()
