"""Nearest-template search for identification, in process, kept current by the gallery version.

* Small galleries (under ``ann_min_templates``): every template in one float32 matrix, one
  matrix product per query (exact).
* Big galleries: a scan of compact codes with exact rescoring (:mod:`facegate.storage.ann_index`),
  on SQLite and PostgreSQL alike, saved under the data folder (sealed like the templates) and
  loaded at the next start. Until it is built (in the background) searches stay exact.
* ``search_index="pgvector"`` on PostgreSQL asks pgvector's HNSW index in SQL instead.

Whether a cache is current costs one primary-key read: ``galleries.template_version``, bumped
by the database in the statement that writes a template (migration 0006), so a write by any
process or worker is seen by the very next search everywhere. A cache behind the database
catches up from ``template_changes`` (the templates added or removed since its version): an
enrollment into a million-template gallery costs the next search one small read, not a reload.
A cache that cannot catch up (the log was pruned, a large change) reloads the gallery.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from facegate.storage.ann_index import ScanIndex
from facegate.storage.gallery_changes import (
    Changes,
    GalleryState,
    changes_since,
    erased,
    gallery_state,
    load_gallery_matrix,
)
from facegate.storage.pgvector_indexes import ensure_pgvector_indexes
from facegate.storage.sealing import Sealer, is_sealed

logger = logging.getLogger(__name__)

# pgvector (only with search_index="pgvector"): the candidate list size of a search; its graph
# (m=32, ef_construction=200) is built by facegate.storage.pgvector_indexes.
PGVECTOR_EF_SEARCH = 600
# A catch-up larger than this share of the gallery reloads it instead (one read of everything
# beats many reads by id).
MAX_CATCH_UP_SHARE = 0.2
FILE_FORMAT = 2


@dataclass(frozen=True)
class Hit:
    template_id: int
    subject_id: int
    score: float


@dataclass
class _GalleryCache:
    state: GalleryState
    ids: np.ndarray  # sorted template ids (exact mode; empty once ``ann`` holds the gallery)
    subjects: np.ndarray  # subject of each id
    matrix: np.ndarray | None  # float32 rows of ``ids``; None once ``ann`` holds the vectors
    ann: ScanIndex | None = None

    @property
    def version(self) -> int:
        return self.state.version

    def apply(self, changes: Changes, state: GalleryState) -> int:
        """Bring the cache to ``state``; the index rows that held removed (or replaced) templates."""
        killed = 0
        if self.ann is not None:
            killed = self.ann.remove(changes.removed)
            self.ann.add(changes.ids, changes.subjects, changes.matrix)
        else:
            keep = ~np.isin(self.ids, changes.removed, assume_unique=True)
            ids = np.concatenate([self.ids[keep], changes.ids])
            order = np.argsort(ids, kind="stable")
            self.ids = ids[order]
            self.subjects = np.concatenate([self.subjects[keep], changes.subjects])[order]
            if self.matrix is not None:
                if len(changes.ids) and self.matrix.size == 0:
                    self.matrix = np.zeros((0, changes.matrix.shape[1]), np.float32)
                rows = self.matrix[keep] if len(changes.ids) == 0 else np.concatenate([self.matrix[keep], changes.matrix])
                self.matrix = rows[order]
        self.state = GalleryState(state.id, max(changes.version, self.version), state.count, state.identity)
        return killed

    def hold(self, ann: ScanIndex) -> None:
        """``ann`` now holds the gallery: drop the exact-mode copy."""
        self.ann, self.matrix = ann, None
        self.ids, self.subjects = np.zeros(0, np.int64), np.zeros(0, np.int64)


@dataclass
class _Pending:
    """An index built on a thread from the templates at ``version``, waiting to be adopted."""

    version: int
    index: ScanIndex


class GallerySearch:
    """Search one backend's galleries; thread-safe, one instance per service (per worker)."""

    def __init__(
        self,
        index_dir: Path | None,
        ann_min_templates: int = 10_000,
        dialect: str = "sqlite",
        build_in_background: bool = True,
        sealer: Sealer | None = None,
        search_index: str = "memory",
        build_threads: int = 1,
    ) -> None:
        self.index_dir = index_dir
        self.sealer = sealer  # the saved index holds the templates: sealed like them
        self.ann_min_templates = ann_min_templates
        self.dialect = dialect
        self.search_index = search_index if dialect == "postgresql" else "memory"
        self.build_in_background = build_in_background
        self.build_threads = build_threads
        self._caches: dict[int, _GalleryCache] = {}
        self._locks: dict[int, threading.Lock] = {}
        self._lock = threading.Lock()
        self._builds: dict[int, threading.Thread] = {}
        self._pending: dict[int, _Pending] = {}
        self._closed = False
        self._pgvector_ready = False

    def prepare(self, engine: Engine) -> None:
        """On ``search_index="pgvector"``, build pgvector's HNSW indexes if they are missing
        (facegate/storage/pgvector_indexes.py); a database not migrated yet is left for the
        first search."""
        if self.search_index != "pgvector" or self._pgvector_ready:
            return
        try:
            with engine.begin() as connection:
                ensure_pgvector_indexes(connection)
            self._pgvector_ready = True
        except ProgrammingError as exc:  # no face_templates table yet
            logger.info("pgvector indexes not built yet: %s", str(exc).splitlines()[0])

    # -- public ---------------------------------------------------------------------------
    def search(
        self, session: Session, gallery_id: int, model_id: str, queries: np.ndarray, k: int, exact: bool | None = None
    ) -> list[list[Hit]]:
        """Top ``k`` templates per query row, best first."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        state = gallery_state(session, gallery_id)
        if state is None:
            self.forget(gallery_id)
            return [[] for _ in queries]
        if state.count == 0:
            return [[] for _ in queries]
        use_ann = (state.count >= self.ann_min_templates) if exact is None else not exact
        if use_ann and self.search_index == "pgvector":
            return self._pgvector_search(session, gallery_id, model_id, queries, min(k, state.count))
        cache = self.current(session, state, want_ann=use_ann)
        if cache.ann is not None and (use_ann or cache.matrix is None):
            return self._ann(cache, queries, k, exact=not use_ann)
        return self._exact(cache, queries, k)

    def current(self, session: Session, state: GalleryState, want_ann: bool = False) -> _GalleryCache:
        """The gallery's cache brought to ``state``'s version (built or caught up as needed)."""
        with self._gallery_lock(state.id):
            cache = self._caches.get(state.id)
            if cache is not None and cache.state.identity != state.identity:
                cache = None  # the gallery was deleted and another made with its id
            if cache is None and want_ann:
                cache = self._load_file(state)
            if cache is not None and cache.version < state.version:
                changes = changes_since(session, state.id, cache.version, self._catch_up_limit(state), state.version)
                if changes is None:
                    cache = None
                else:
                    killed = cache.apply(changes, state)
                    if cache.ann is not None and erased(changes, killed):
                        self.drop_saved(state.id)
            if cache is None:
                cache = self._reload(session, state)
            self._caches[state.id] = cache
            pending = self._pending.pop(state.id, None)
            if pending is not None and (want_ann or cache.ann is not None):
                self._adopt(session, state, cache, pending.index, pending.version)
            elif cache.ann is None and want_ann:
                self._build_now_or_later(state, cache)
            elif cache.ann is not None and cache.ann.worn():
                self._start_build(state.id, cache)
            return cache

    def forget(self, gallery_id: int) -> None:
        """Drop everything held for a deleted gallery, its saved index file included (it holds
        the templates; the next gallery given this id would not trust it anyway)."""
        with self._lock:
            self._caches.pop(gallery_id, None)
            self._pending.pop(gallery_id, None)
        self.drop_saved(gallery_id)

    def drop_saved(self, gallery_id: int) -> None:
        """Delete the gallery's saved index: templates were removed (an erasure), and the file
        still holds them. The next start (or rebuild) writes a new one."""
        path = self._path(gallery_id)
        if path is not None:
            path.unlink(missing_ok=True)

    def wait_for_builds(self, timeout: float | None = None) -> bool:
        """Wait for the background index builds under way; True when none is left."""
        with self._lock:
            builds = list(self._builds.values())
        for thread in builds:
            thread.join(timeout)
        with self._lock:
            return not self._builds

    def close(self) -> None:
        """Stop adopting background builds (a build under way finishes and is dropped)."""
        with self._lock:
            self._closed = True

    # -- loading ----------------------------------------------------------------------------
    def _gallery_lock(self, gallery_id: int) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(gallery_id, threading.Lock())

    @staticmethod
    def _catch_up_limit(state: GalleryState) -> int:
        return max(1000, int(MAX_CATCH_UP_SHARE * state.count))

    @staticmethod
    def _reload(session: Session, state: GalleryState) -> _GalleryCache:
        ids, subjects, matrix = load_gallery_matrix(session, state.id)
        # On PostgreSQL the rows read may be newer than ``state``: the next catch-up re-applies
        # those changes, and applying a change twice is harmless (ids are dropped, then added).
        return _GalleryCache(state, ids, subjects, matrix)

    # -- the approximate index --------------------------------------------------------------
    def _build_now_or_later(self, state: GalleryState, cache: _GalleryCache) -> None:
        if self.build_in_background:
            self._start_build(state.id, cache)  # exact until it is adopted
            return
        assert cache.matrix is not None
        index = ScanIndex.build(cache.ids, cache.subjects, cache.matrix, threads=self.build_threads)
        self._save_file(state, index)
        cache.hold(index)

    def _adopt(self, session: Session, state: GalleryState, cache: _GalleryCache, index: ScanIndex, built_at: int) -> None:
        """Take a finished build, caught up from the version it was built at."""
        if built_at < cache.version:
            changes = changes_since(session, state.id, built_at, self._catch_up_limit(state), cache.version)
            if changes is None:
                self._start_build(state.id, cache)  # too much changed meanwhile: again
                return
            killed = index.remove(changes.removed)
            index.add(changes.ids, changes.subjects, changes.matrix)
            if erased(changes, killed):
                self.drop_saved(state.id)  # saved from rows since erased
        cache.hold(index)

    def _start_build(self, gallery_id: int, cache: _GalleryCache) -> None:
        """Build an index of ``cache``'s templates on a thread; searches stay as they are until
        it is adopted. Only one process builds a gallery at a time (a lock file beside it): the
        others wait for the lock, then take the file it saved instead of building again."""
        with self._lock:
            if gallery_id in self._builds or self._closed:
                return
            snapshot = (cache.state, cache.ids, cache.subjects, cache.matrix, cache.ann)
            thread = threading.Thread(target=self._build, args=(gallery_id, snapshot), daemon=True,
                                      name=f"index-build-{gallery_id}")
            self._builds[gallery_id] = thread
        thread.start()

    def _build(self, gallery_id: int, snapshot) -> None:
        state, ids, subjects, matrix, ann = snapshot
        lock = self._file_lock(gallery_id)  # waits while another process builds this gallery
        try:
            saved = self._read_file(gallery_id, state.identity)
            if saved is not None and saved[0] >= state.version and not saved[1].worn():
                # Built meanwhile by another process (or before): newer changes are replayed at adoption.
                version, index = saved
            else:
                if matrix is None and ann is not None:
                    # A rebuild (tombstones, growth): the live rows, perhaps newer than ``state``;
                    # the catch-up at adoption replays those changes harmlessly.
                    ids, subjects, matrix = ann.live()
                started = time.perf_counter()
                index = ScanIndex.build(ids, subjects, matrix, threads=self.build_threads)
                logger.info("gallery %s: index of %d templates built in %.1f s", gallery_id, len(ids),
                            time.perf_counter() - started)
                self._save_file(state, index)
                version = state.version
            with self._lock:
                if not self._closed:
                    self._pending[gallery_id] = _Pending(version, index)
        except Exception:  # searches go on as they were; the next one tries again
            logger.exception("building the index of gallery %s failed", gallery_id)
        finally:
            if lock is not None:
                lock.close()
            with self._lock:
                self._builds.pop(gallery_id, None)

    # -- the file -----------------------------------------------------------------------------
    def _path(self, gallery_id: int) -> Path | None:
        return None if self.index_dir is None else self.index_dir / f"gallery_{gallery_id}.scan"

    def _file_lock(self, gallery_id: int):
        """An open file, exclusively locked (held while building; waits for another process that
        holds it); None without an index folder."""
        path = self._path(gallery_id)
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_suffix(".lock"), "a+b")  # noqa: SIM115 - held across the build
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def _save_file(self, state: GalleryState, index: ScanIndex) -> None:
        path = self._path(state.id)
        if path is None:
            return
        stamp = {"format": FILE_FORMAT, "gallery": state.id, "identity": state.identity, "version": state.version}
        data = index.to_bytes(meta=stamp)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(self.sealer.seal(data, b"gallery-index") if self.sealer is not None else data)
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one

    def _load_file(self, state: GalleryState) -> _GalleryCache | None:
        """The saved index of this gallery when it is not newer than the database (the change
        log then brings it up to date, or tells that it cannot); None otherwise."""
        saved = self._read_file(state.id, state.identity)
        if saved is None or saved[0] > state.version:
            return None
        version, index = saved
        empty = np.zeros(0, np.int64)
        return _GalleryCache(GalleryState(state.id, version, len(index), state.identity), empty, empty, None, index)

    def _read_file(self, gallery_id: int, identity: str) -> tuple[int, ScanIndex] | None:
        """(version, index) saved for this gallery (same id and identity); None when there is
        none, or it is damaged or sealed with a key this service lacks (then it is rebuilt)."""
        path = self._path(gallery_id)
        if path is None or not path.exists():
            return None
        try:
            data = path.read_bytes()
            if self.sealer is not None:
                data = self.sealer.open(data, b"gallery-index")
            elif is_sealed(data):
                return None
            stamp = ScanIndex.read_meta(data)
            if (stamp.get("format"), stamp.get("gallery"), stamp.get("identity")) != (FILE_FORMAT, gallery_id, identity):
                return None
            return int(stamp["version"]), ScanIndex.from_bytes(data)
        except Exception:  # noqa: BLE001 - a damaged file (or sealed with another key) is rebuilt
            logger.warning("the saved index of gallery %s is unreadable; rebuilding", gallery_id)
            return None

    # -- searching ----------------------------------------------------------------------------
    @staticmethod
    def _exact(cache: _GalleryCache, queries: np.ndarray, k: int) -> list[list[Hit]]:
        assert cache.matrix is not None
        if len(cache.ids) == 0:
            return [[] for _ in queries]
        scores = queries @ cache.matrix.T
        k = min(k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out = []
        for row, cols in enumerate(top):
            cols = cols[np.argsort(-scores[row, cols])]
            out.append([Hit(int(cache.ids[c]), int(cache.subjects[c]), float(scores[row, c])) for c in cols])
        return out

    @staticmethod
    def _ann(cache: _GalleryCache, queries: np.ndarray, k: int, exact: bool = False) -> list[list[Hit]]:
        assert cache.ann is not None
        scores, ids, subjects = cache.ann.search(queries, k, exact=exact)
        return [[Hit(int(ids[q, j]), int(subjects[q, j]), float(scores[q, j])) for j in range(k) if ids[q, j] >= 0]
                for q in range(len(queries))]

    # -- pgvector -------------------------------------------------------------------------
    def _pgvector_search(
        self, session: Session, gallery_id: int, model_id: str, queries: np.ndarray, k: int
    ) -> list[list[Hit]]:
        """pgvector (0.6) filters gallery and model *after* the HNSW scan: when the table holds
        other galleries, the ``ef_search`` candidates of a query may hold fewer than ``k`` of
        this gallery's templates. Such a starved answer is asked again as an exact scan of the
        gallery's rows, so a search never comes back short (or empty) for that reason."""
        if not self._pgvector_ready:
            self.prepare(session.get_bind())  # type: ignore[arg-type]
        out = [self._pgvector(session, gallery_id, model_id, q, k) for q in queries]
        starved = [i for i, hits in enumerate(out) if len(hits) < k]
        if starved:
            logger.info("gallery %s: %d of %d approximate searches came back short; searched exactly",
                        gallery_id, len(starved), len(out))
            savepoint = session.begin_nested()
            try:
                session.execute(text("SET LOCAL enable_indexscan = off"))
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                    session.execute(text(f"SET LOCAL {setting} = on"))
                for i in starved:
                    out[i] = self._pgvector(session, gallery_id, model_id, queries[i], k)
            finally:
                savepoint.rollback()
        return out

    @staticmethod
    def _pgvector(session: Session, gallery_id: int, model_id: str, query: np.ndarray, k: int) -> list[Hit]:
        dim = int(query.shape[0])
        literal = "[" + ",".join(f"{float(x):.7g}" for x in query) + "]"
        session.execute(text(f"SET LOCAL hnsw.ef_search = {int(PGVECTOR_EF_SEARCH)}"))
        rows = session.execute(
            text(
                f"SELECT id, subject_id, 1 - ((vector::vector({dim})) <=> CAST(:q AS vector({dim}))) AS score "
                "FROM face_templates WHERE gallery_id = :g AND model_id = :m "
                f"ORDER BY (vector::vector({dim})) <=> CAST(:q AS vector({dim})) LIMIT :k"
            ),
            {"q": literal, "g": gallery_id, "m": model_id, "k": k},
        ).all()
        return [Hit(int(r[0]), int(r[1]), float(r[2])) for r in rows]
