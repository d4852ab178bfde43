"""The approximate index against exact search, and how it follows the gallery version.

Recall@1: the share of queries whose approximate top-1 template is the exact top-1 template,
on galleries big enough to take the approximate path at the default settings: the in-process
index (code scan + exact rescoring) on SQLite and on PostgreSQL, and pgvector's HNSW index on
PostgreSQL with ``search_index="pgvector"``.

The vectors are synthetic but shaped like ArcFace embeddings of real faces, so the suite needs
no dataset and no ``out/`` folder: identity centres drawn from a Gaussian whose variance decays
over the first 400 of 512 dimensions (exp(-k/110)), giving impostor cosines of std ~0.07 like
ArcFace on LFW (0.066); each template is its centre plus the same kind of noise at equal norm
(same-identity cosines ~0.5). On this data approximate recall tracks the real LFW-derived
galleries of ``bench/service.py --recall`` closely (isotropic random vectors would be far
harder, and easier clusters far easier, than real faces). Queries are new samples of enrolled
identities and of identities never enrolled: the second kind is the hard one for any index, as
nothing in the gallery stands out from the rest.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event

from facegate.config import Settings
from facegate.gallery.service import GalleryService
from facegate.security import SYSTEM
from facegate.storage.models import Gallery, Subject

DIM = 512
RECALL_GOAL = 0.99


# -- data -------------------------------------------------------------------------------------
def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


_SCALE = np.where(np.arange(1, DIM + 1) <= 400, np.exp(-np.arange(1, DIM + 1) / 220.0), 0.0).astype(np.float32)


def _draw(rng: np.random.Generator, n: int) -> np.ndarray:
    return _normalise(rng.standard_normal((n, DIM), dtype=np.float32) * _SCALE)


def _sample(rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    return _normalise(centres + _draw(rng, len(centres)))


@dataclass
class Structured:
    vectors: np.ndarray  # (n_ids * per, DIM) templates, identity by identity
    owners: np.ndarray  # identity of each template
    queries: np.ndarray  # new samples: enrolled identities first, then strangers
    enrolled_queries: int


def structured(n_ids: int, per: int, seed: int = 0, enrolled_queries: int = 400, strangers: int = 100) -> Structured:
    rng = np.random.default_rng(seed)
    centres = _draw(rng, n_ids + strangers)
    vectors = _sample(rng, np.repeat(centres[:n_ids], per, axis=0))
    owners = np.repeat(np.arange(n_ids), per)
    probes = rng.choice(n_ids, min(enrolled_queries, n_ids), replace=False)
    queries = np.concatenate([_sample(rng, centres[probes]), _sample(rng, centres[n_ids:])])
    return Structured(vectors, owners, queries, len(probes))


def external_id(identity: int) -> str:
    return f"id{identity:06d}"


# -- services ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ann_pg_server(tmp_path_factory):
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("ann_pgdata"), cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()


def _pg_url(server) -> str:
    import psycopg

    name = f"ann_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server.get_uri(name)


def make_service(backend: str, data_dir: Path, request, database_url: str | None = None, **settings) -> GalleryService:
    if database_url is None:
        database_url = "" if backend == "sqlite" else _pg_url(request.getfixturevalue("ann_pg_server"))
    # These tests look at the index the search path builds: build it in the search, not beside.
    settings.setdefault("ann_build_in_background", False)
    service = GalleryService(Settings(data_dir=data_dir, database_url=database_url, **settings), migrate=True)
    request.addfinalizer(service.close)
    return service


def load_gallery(service: GalleryService, name: str, data: Structured, chunk: int = 25_000, bulk: bool = False) -> int:
    """Import the templates. On PostgreSQL, ``bulk`` drops the pgvector HNSW index first and
    recreates it from its own definition afterwards (row-by-row index updates take minutes
    for 25k templates on 2 cores, CREATE INDEX seconds; same index, same parameters); then
    ANALYZE, which autovacuum runs within a minute of a bulk load: until then the planner
    takes the table for empty and sorts the gallery exactly instead of using HNSW."""
    pg = service.ctx.db.dialect.name == "postgresql"
    service.create_gallery(name, principal=SYSTEM)
    definitions = []
    if pg and bulk:
        with service.ctx.db.begin() as connection:
            definitions = connection.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'face_templates' "
                "AND position('USING hnsw' in indexdef) > 0"
            ).all()
            assert definitions, "the migration's HNSW index is missing"
            for index_name, _ in definitions:
                connection.exec_driver_sql(f'DROP INDEX "{index_name}"')
    rows = [(external_id(int(o)), "", v) for o, v in zip(data.owners, data.vectors)]
    for start in range(0, len(rows), chunk):
        service.import_templates(name, rows[start : start + chunk], principal=SYSTEM)
    if pg:
        with service.ctx.db.begin() as connection:
            connection.exec_driver_sql("SET maintenance_work_mem = '512MB'")
            for _, definition in definitions:
                connection.exec_driver_sql(definition)
            connection.exec_driver_sql("ANALYZE face_templates")
    with service.ctx.sessions() as session:
        return session.query(Gallery).filter_by(name=name).one().id


def search(service: GalleryService, gallery_id: int, queries: np.ndarray, k: int = 20, exact: bool | None = None):
    with service.ctx.sessions() as session:
        return service.ctx.search.search(session, gallery_id, "arcface", queries, k=k, exact=exact)


def subject_id(service: GalleryService, gallery_id: int, ext: str) -> int | None:
    with service.ctx.sessions() as session:
        row = session.query(Subject).filter_by(gallery_id=gallery_id, external_id=ext).one_or_none()
        return row.id if row else None


def pgvector_plan(service: GalleryService, gallery_id: int, query: np.ndarray) -> str:
    """EXPLAIN of the very statement the pgvector path sends (captured from the engine)."""
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "ORDER BY" in statement and "<=>" in statement:
            captured.append((statement, parameters))

    event.listen(service.ctx.db, "before_cursor_execute", capture)
    try:
        search(service, gallery_id, query[None], k=20)
    finally:
        event.remove(service.ctx.db, "before_cursor_execute", capture)
    assert captured, "the pgvector query was not sent: the ANN path was not taken"
    statement, parameters = captured[-1]
    raw = service.ctx.db.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        return "\n".join(r[0] for r in cursor.fetchall())
    finally:
        raw.close()


def price_out_exact_plans(service: GalleryService) -> None:
    """With the m=32 graph, PostgreSQL's planner prices a scan of a gallery of a few thousand
    rows under the HNSW index and sorts it exactly (right in production, where the index path
    starts at 20k templates); where the index itself is under test, the exact plans are turned
    off for every connection of the service."""
    off = "SET enable_seqscan = off; SET enable_bitmapscan = off; SET enable_sort = off"
    event.listen(service.ctx.db, "connect", lambda dbapi, _: dbapi.execute(off))
    service.ctx.db.dispose()


def assert_ann_path(service: GalleryService, backend: str, gallery_id: int, query: np.ndarray) -> None:
    if service.settings.search_index == "pgvector" and backend == "postgresql":
        plan = pgvector_plan(service, gallery_id, query)
        assert "ix_face_templates_hnsw_arcface" in plan, plan
    else:
        search(service, gallery_id, query[None])
        cache = service.ctx.search._caches[gallery_id]
        assert cache.ann is not None, "the index was not built: the exact path was taken"


def recall_at_1(service: GalleryService, gallery_id: int, data: Structured) -> dict:
    ann = search(service, gallery_id, data.queries)  # default path: approximate at this size
    exact = search(service, gallery_id, data.queries, exact=True)
    hits = np.array(
        [
            bool(a) and (a[0].template_id == e[0].template_id or abs(a[0].score - e[0].score) < 1e-6)
            for a, e in zip(ann, exact)
        ]
    )
    n = data.enrolled_queries
    return {"all": float(hits.mean()), "enrolled": float(hits[:n].mean()), "strangers": float(hits[n:].mean())}


# -- recall -----------------------------------------------------------------------------------
CASES = [("sqlite", "memory"), ("postgresql", "memory"), ("postgresql", "pgvector")]
# The in-process index is the same code on both backends (the PostgreSQL cases of the tests
# below cover its loading and catching up there): its PostgreSQL recall run is a slow test.
FAST_CASES = [CASES[0], CASES[2], pytest.param(*CASES[1], marks=pytest.mark.slow)]


def _recall_case(backend: str, index: str, n_ids: int, per: int, tmp_path: Path, request) -> None:
    service = make_service(backend, tmp_path / "data", request, search_index=index)
    data = structured(n_ids, per, seed=7)
    size = len(data.vectors)
    assert size >= service.settings.ann_min_templates, "the gallery must be big enough for the ANN path"
    gallery_id = load_gallery(service, "ann", data, bulk=True)
    assert_ann_path(service, backend, gallery_id, data.queries[0])
    recall = recall_at_1(service, gallery_id, data)
    print(f"{backend}/{index} {size} templates: recall@1 {recall}")
    assert recall["all"] >= RECALL_GOAL, recall
    assert recall["enrolled"] >= RECALL_GOAL, recall


@pytest.mark.parametrize("backend,index", FAST_CASES)
def test_ann_recall_at_1_on_25k_templates(backend, index, tmp_path, request):
    _recall_case(backend, index, n_ids=5_000, per=5, tmp_path=tmp_path, request=request)


@pytest.mark.slow
@pytest.mark.parametrize("backend,index", CASES)
def test_ann_recall_at_1_on_100k_templates(backend, index, tmp_path, request):
    _recall_case(backend, index, n_ids=20_000, per=5, tmp_path=tmp_path, request=request)


# -- following the gallery ----------------------------------------------------------------------
SMALL = dict(ann_min_templates=500)  # a small gallery on the ANN path keeps these fast


def _top(hits) -> tuple[int, int, float]:
    return hits[0].template_id, hits[0].subject_id, hits[0].score


def _count_builds(monkeypatch) -> list[int]:
    """Record every index build (its size), to tell an update in place from a rebuild."""
    from facegate.storage.ann_index import ScanIndex

    built: list[int] = []
    original = ScanIndex.build.__func__  # type: ignore[attr-defined]

    def counting(cls, ids, subjects, matrix, threads=1, seed=0):
        built.append(len(ids))
        return original(cls, ids, subjects, matrix, threads, seed)

    monkeypatch.setattr(ScanIndex, "build", classmethod(counting))
    return built


def test_every_template_finds_itself(tmp_path, request):
    """Each enrolled template, searched for itself, comes back first with score ~1."""
    service = make_service("sqlite", tmp_path / "data", request, **SMALL)
    data = structured(400, 3, seed=11)
    gallery_id = load_gallery(service, "self", data)
    hits = search(service, gallery_id, data.vectors, k=1)
    assert service.ctx.search._caches[gallery_id].ann is not None
    with service.ctx.sessions() as session:
        from facegate.storage.models import FaceTemplate

        ids = [t for (t,) in session.query(FaceTemplate.id).filter_by(gallery_id=gallery_id).order_by(FaceTemplate.id)]
    assert [h[0].template_id for h in hits] == ids
    assert min(h[0].score for h in hits) > 0.999


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_search_follows_import_and_delete_in_place(backend, tmp_path, request, monkeypatch):
    """After the index exists, an enrollment and a delete are seen by the very next search,
    and the index is updated in place (caught up from the change log), never rebuilt."""
    built = _count_builds(monkeypatch)
    service = make_service(backend, tmp_path / "data", request, **SMALL)
    data = structured(300, 3, seed=3)
    gallery_id = load_gallery(service, "g", data)
    search(service, gallery_id, data.queries[:1])
    assert built == [900]
    index = service.ctx.search._caches[gallery_id].ann

    newcomer = structured(1, 1, seed=99).vectors
    service.import_templates("g", [("newcomer", "", newcomer[0])], principal=SYSTEM)
    top = _top(search(service, gallery_id, newcomer)[0])
    assert top[1] == subject_id(service, gallery_id, "newcomer") and top[2] > 0.999

    service.delete_subject("g", "newcomer", principal=SYSTEM)
    after = search(service, gallery_id, newcomer)[0]
    assert all(h.subject_id != top[1] for h in after)
    assert service.ctx.search._caches[gallery_id].ann is index and built == [900]


def _replace_newest_subject(service: GalleryService, data: Structured, seed: int):
    """Delete the subject holding the highest template ids and import another with as many
    templates: SQLite hands the freed ids out again, so the new templates get the old ids."""
    last = external_id(int(data.owners[-1]))
    old_id = subject_id(service, 1, last)
    service.delete_subject("g", last, principal=SYSTEM)
    replacement = structured(1, 3, seed=seed).vectors
    service.import_templates("g", [("replacement", "", v) for v in replacement], principal=SYSTEM)
    return replacement, old_id


def test_sqlite_reused_ids_are_followed(tmp_path, request):
    """The trap a signature fell into: same count, same max id, same id sum, other vectors.
    The version moved, so the change log replaces the old vectors."""
    service = make_service("sqlite", tmp_path / "data", request, **SMALL)
    data = structured(300, 3, seed=5)
    gallery_id = load_gallery(service, "g", data)
    search(service, gallery_id, data.queries[:1])
    old_vectors = data.vectors[-3:]
    replacement, old_id = _replace_newest_subject(service, data, seed=77)
    new_id = subject_id(service, gallery_id, "replacement")
    for v in replacement:
        assert _top(search(service, gallery_id, v[None])[0])[1] == new_id
    for v in old_vectors:
        assert all(h.subject_id != old_id for h in search(service, gallery_id, v[None])[0])


def test_saved_index_is_loaded_and_caught_up(tmp_path, request, monkeypatch):
    """A restart loads the saved index and applies the changes made since (by anyone) from
    the change log instead of reading the gallery again and rebuilding."""
    first = make_service("sqlite", tmp_path / "data", request, **SMALL)
    data = structured(300, 3, seed=8)
    gallery_id = load_gallery(first, "g", data)
    search(first, gallery_id, data.queries[:1])
    first.close()
    extra = structured(3, 1, seed=42).vectors
    writer = make_service("sqlite", tmp_path / "data", request, ann_min_templates=10**9)  # exact: builds nothing
    writer.import_templates("g", [("late", "", extra[0])], principal=SYSTEM)

    built = _count_builds(monkeypatch)
    second = make_service("sqlite", tmp_path / "data", request, **SMALL)
    top = _top(search(second, gallery_id, extra[:1])[0])
    assert built == [], "the saved index was rebuilt instead of loaded"
    assert top[1] == subject_id(second, gallery_id, "late") and top[2] > 0.999
    # New templates caught up in place do not cost the saved file (only erasures do): a third
    # start still loads it instead of building.
    writer.import_templates("g", [("later", "", extra[1])], principal=SYSTEM)
    search(second, gallery_id, extra[1:2])
    assert (tmp_path / "data" / "index" / f"gallery_{gallery_id}.scan").exists()
    second.close()
    third = make_service("sqlite", tmp_path / "data", request, **SMALL)
    top = _top(search(third, gallery_id, extra[1:2])[0])
    assert built == [] and top[1] == subject_id(third, gallery_id, "later")


def test_erasure_deletes_the_saved_index_that_holds_the_templates(tmp_path, request, monkeypatch):
    """The saved index holds every template it was built from: erasing a subject deletes the
    file (in the process that erased, whether or not it searches), and the next start builds a
    new one without the erased templates."""
    first = make_service("sqlite", tmp_path / "data", request, **SMALL)
    data = structured(300, 3, seed=18)
    gallery_id = load_gallery(first, "g", data)
    search(first, gallery_id, data.queries[:1])
    first.close()
    saved = tmp_path / "data" / "index" / f"gallery_{gallery_id}.scan"
    assert saved.exists()
    writer = make_service("sqlite", tmp_path / "data", request, ann_min_templates=10**9)  # exact: builds nothing
    writer.delete_subject("g", external_id(0), principal=SYSTEM)
    assert not saved.exists(), "the erased templates are still in the saved index"

    built = _count_builds(monkeypatch)
    second = make_service("sqlite", tmp_path / "data", request, **SMALL)
    gone = data.vectors[data.owners == 0]
    assert all(h.subject_id != 1 for v in gone for h in search(second, gallery_id, v[None])[0])
    assert built == [897] and saved.exists()


def test_saved_index_of_another_database_is_rebuilt(tmp_path, request, monkeypatch):
    """A new database under the same data folder: its gallery 1 has as many templates and the
    same version, but another identity (creation time); the file is not trusted."""
    first = make_service("sqlite", tmp_path / "data", request, database_url=f"sqlite:///{tmp_path / 'a.db'}", **SMALL)
    data = structured(300, 3, seed=9)
    load_gallery(first, "g", data)
    search(first, 1, data.queries[:1])
    first.close()
    built = _count_builds(monkeypatch)
    other = structured(300, 3, seed=10)
    second = make_service("sqlite", tmp_path / "data", request, database_url=f"sqlite:///{tmp_path / 'b.db'}", **SMALL)
    load_gallery(second, "g", other)
    top = _top(search(second, 1, other.vectors[:1])[0])
    assert built == [900] and top[2] > 0.999


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_another_service_instance_sees_writes_at_once(backend, tmp_path, request):
    """Two workers on one database: what one enrolls, the other finds on its next search."""
    url = "" if backend == "sqlite" else _pg_url(request.getfixturevalue("ann_pg_server"))
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    # (Workers of one host share the data folder, hence the template key and the index files.)
    writer = make_service(backend, tmp_path / "data", request, database_url=url, **SMALL)
    reader = make_service(backend, tmp_path / "data", request, database_url=url, **SMALL)
    data = structured(300, 3, seed=12)
    gallery_id = load_gallery(writer, "g", data)
    search(reader, gallery_id, data.queries[:1])
    assert reader.ctx.search._caches[gallery_id].ann is not None
    newcomer = structured(1, 1, seed=123).vectors
    writer.import_templates("g", [("newcomer", "", newcomer[0])], principal=SYSTEM)
    assert _top(search(reader, gallery_id, newcomer)[0])[1] == subject_id(reader, gallery_id, "newcomer")
    writer.delete_subject("g", "newcomer", principal=SYSTEM)
    assert all(h.subject_id != subject_id(writer, gallery_id, "x") for h in search(reader, gallery_id, newcomer)[0])
    assert _top(search(reader, gallery_id, newcomer)[0])[2] < 0.9


def test_missing_index_is_built_in_the_background_while_searches_stay_exact(tmp_path, request):
    """With the production default, the first search of a big gallery answers at once from the
    exact path; the index is adopted by a later search, caught up with what changed meanwhile."""
    service = make_service("sqlite", tmp_path / "data", request, ann_build_in_background=True, **SMALL)
    data = structured(300, 3, seed=13)
    gallery_id = load_gallery(service, "g", data)
    first = search(service, gallery_id, data.queries[:5])
    exact = search(service, gallery_id, data.queries[:5], exact=True)
    assert [_top(h) for h in first] == [_top(h) for h in exact]
    newcomer = structured(1, 1, seed=321).vectors
    service.import_templates("g", [("meanwhile", "", newcomer[0])], principal=SYSTEM)
    assert service.ctx.search.wait_for_builds(timeout=120)
    top = _top(search(service, gallery_id, newcomer)[0])
    assert service.ctx.search._caches[gallery_id].ann is not None
    assert top[1] == subject_id(service, gallery_id, "meanwhile")


def test_worn_index_is_rebuilt_from_its_own_rows(tmp_path, request, monkeypatch):
    """After many deletes the tombstones pass their share: the index is rebuilt in the
    background from its live rows (no second copy of the gallery), then adopted."""
    built = _count_builds(monkeypatch)
    service = make_service("sqlite", tmp_path / "data", request, ann_build_in_background=True, **SMALL)
    data = structured(300, 3, seed=14)
    gallery_id = load_gallery(service, "g", data)
    search(service, gallery_id, data.queries[:1])
    assert service.ctx.search.wait_for_builds(timeout=120)
    search(service, gallery_id, data.queries[:1])
    for i in range(70):  # 210 of 900 templates: over a fifth
        service.delete_subject("g", external_id(i), principal=SYSTEM)
    search(service, gallery_id, data.queries[:1])
    assert service.ctx.search.wait_for_builds(timeout=120)
    search(service, gallery_id, data.queries[:1])
    assert built == [900, 690]
    ann = service.ctx.search._caches[gallery_id].ann
    assert ann is not None and ann.rows == len(ann) == 690
    survivor = data.vectors[data.owners == 100][:1]
    assert _top(search(service, gallery_id, survivor)[0])[1] == subject_id(service, gallery_id, external_id(100))


def test_saved_index_file_is_sealed(tmp_path, request):
    """The saved index holds the templates: it is sealed like them (the default), so the file
    alone gives nothing away."""
    service = make_service("sqlite", tmp_path / "data", request, **SMALL)
    data = structured(300, 3, seed=15)
    gallery_id = load_gallery(service, "g", data)
    search(service, gallery_id, data.queries[:1])
    saved = (tmp_path / "data" / "index" / f"gallery_{gallery_id}.scan").read_bytes()
    from facegate.storage.sealing import is_sealed

    assert is_sealed(saved)
    assert data.vectors[0].tobytes()[:64] not in saved


def test_pgvector_search_never_comes_back_short_when_galleries_share_the_table(tmp_path, request, monkeypatch):
    """pgvector 0.6 filters by gallery after its HNSW scan: beside a bigger gallery, the candidate
    list of a search may hold fewer than k of this gallery's templates. Such a search is asked
    again exactly; the planner settings of the transaction are restored afterwards."""
    from sqlalchemy import text

    from facegate.storage import vector_index

    service = make_service("postgresql", tmp_path / "data", request, search_index="pgvector", **SMALL)
    price_out_exact_plans(service)
    load_gallery(service, "big", structured(750, 4, seed=11, enrolled_queries=10, strangers=0), bulk=True)
    small = structured(150, 4, seed=12, enrolled_queries=10, strangers=0)
    small_id = load_gallery(service, "small", small, bulk=True)
    monkeypatch.setattr(vector_index, "PGVECTOR_EF_SEARCH", 40)  # a short candidate list
    probes = small.vectors[::60]
    with service.ctx.sessions() as session:
        raw = [service.ctx.search._pgvector(session, small_id, "arcface", q, 20) for q in probes]
    assert min(len(r) for r in raw) < 20, "the HNSW scan was not starved: the test shows nothing"

    exact = search(service, small_id, probes, k=20, exact=True)
    with service.ctx.sessions() as session:
        hits = service.ctx.search.search(session, small_id, "arcface", probes, k=20)
        assert session.execute(text("SHOW enable_indexscan")).scalar() == "on"
        assert session.execute(text("SHOW enable_seqscan")).scalar() == "off"  # this test's own setting
    # The same 20 best, by score (two near-equal scores may swap places between float orders).
    assert all(len(row) == 20 for row in hits)
    for row, reference in zip(hits, exact):
        assert row[0].template_id == reference[0].template_id and row[0].score > 0.999
        np.testing.assert_allclose([h.score for h in row], [h.score for h in reference], atol=1e-5)


def test_a_process_waits_for_anothers_build_and_takes_its_file(tmp_path, request, monkeypatch):
    """Two workers of one host: while one builds a gallery's index (holding the lock file), the
    other waits, then takes the file it saved instead of building the same index again."""
    import fcntl

    built = _count_builds(monkeypatch)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    builder = make_service("sqlite", tmp_path / "data", request, database_url=url, **SMALL)
    waiter = make_service("sqlite", tmp_path / "data", request, database_url=url, ann_build_in_background=True, **SMALL)
    data = structured(300, 3, seed=19)
    gallery_id = load_gallery(builder, "g", data)
    lock_path = tmp_path / "data" / "index" / f"gallery_{gallery_id}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # "another process" is building
        first = search(waiter, gallery_id, data.queries[:3])  # answered exactly meanwhile
        assert not waiter.ctx.search.wait_for_builds(timeout=1), "the waiter built instead of waiting"
        search(builder, gallery_id, data.queries[:1])  # the builder builds and saves (inline)
    assert waiter.ctx.search.wait_for_builds(timeout=60)
    again = search(waiter, gallery_id, data.queries[:3])
    assert waiter.ctx.search._caches[gallery_id].ann is not None
    assert built == [900], "the same index was built twice"
    assert [_top(h)[:2] for h in again] == [_top(h)[:2] for h in first]
    np.testing.assert_allclose([_top(h)[2] for h in again], [_top(h)[2] for h in first], atol=1e-5)
