"""Nearest-template search for identification.

* Exact: all of a gallery's templates in one float32 matrix, one matrix product per query.
  Used for small galleries, and as the reference the approximate indexes are measured on.
* Approximate beside SQLite: a usearch HNSW index per gallery, saved under the data folder.
* Approximate on PostgreSQL: pgvector's HNSW index (created by the migrations), queried in SQL.

Caches are keyed by a signature of the gallery's templates in the database (count, max id,
sum of ids), so an index that drifted from the database (another process enrolled, a crash
mid-write) is detected and reloaded instead of serving stale answers. The usearch index then
follows the change in place (templates gone or changed are removed, new ones added: after an
enrollment into a 100k gallery the next search pays a few seconds, mostly reading the gallery
back, instead of a rebuild of several minutes on 2 cores); it is rebuilt when the change is large.
A missing index is built on a background thread while searches stay exact (by default;
``ann_build_in_background``). A usearch file on disk is trusted only when its stamp holds the
same signature *and* a digest of the exact template ids and vectors it was built from: a
signature alone can repeat with other contents (SQLite reuses the highest id after a delete; a
fresh database with as many templates as an old one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from facegate.storage.models import FaceTemplate, Gallery
from facegate.storage.sealing import Sealer, is_sealed

if TYPE_CHECKING:  # usearch is imported when the first approximate index is built
    from usearch.index import Index

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    template_id: int
    subject_id: int
    score: float


Signature = tuple[int, int, int]

# Approximate-search parameters. usearch: graph degree, and candidate list sizes when building
# and searching. pgvector: the candidate list size of a search; its graph (m=32,
# ef_construction=200, usearch's) is built by migration 0003.
# Chosen on 100k-template galleries (bench/service.py --recall: 1,649 real LFW ArcFace templates
# plus 98k distractors drawn from a Gaussian fitted to real LFW embeddings; 1,000 real queries,
# a fifth of them people never enrolled), recall@1 against exact search (run of 2026-11-24):
#   usearch expansion_search 300 / 400 / 600 / 1000: 0.964 / 0.973 / 0.988 / 0.996
#   pgvector ef_search       300 / 400 / 600 / 1000: 0.969 / 0.981 / 0.994 / 0.998
# (with pgvector's default graph, m=16 / ef_construction=64, ef_search 1000 gave only 0.973).
# The misses are nearly all faces never enrolled, whose best score is far under the threshold:
# every setting from 300 up gave the exact search's decision on all 1,000 queries.
# On 2 cores exact search of 100k templates takes ~10-20 ms, less than either index at these
# settings (usearch ~31 ms, pgvector ~76 ms): the approximate path pays off only for bigger
# galleries (ann_min_templates). tests/test_ann_recall.py holds both to >= 0.99.
USEARCH_CONNECTIVITY = 32
USEARCH_EXPANSION_ADD = 200
USEARCH_EXPANSION_SEARCH = 1000
PGVECTOR_EF_SEARCH = 600
# The usearch index is updated in place while the templates removed since its build stay under
# this share of the gallery and one change adds or removes under this share; beyond, rebuilt.
USEARCH_MAX_CHURN = 0.2
# usearch 2.26 loses nodes when several threads insert at once: in 100 two-thread builds of a
# 1,200-template gallery, 76 left some templates unreachable (266 in all; not found even when
# searched for themselves, at any expansion_search); 100 one-thread builds lost none, for 1.26x
# the build time. Inserts therefore run on one thread (100k templates: 680 s on this machine,
# which is why a missing index is built in the background); searches may use several.
USEARCH_ADD_THREADS = 1


def gallery_signature(session: Session, gallery_id: int) -> Signature:
    count, max_id, sum_id = session.execute(
        select(func.count(FaceTemplate.id), func.max(FaceTemplate.id), func.sum(FaceTemplate.id)).where(
            FaceTemplate.gallery_id == gallery_id
        )
    ).one()
    return int(count or 0), int(max_id or 0), int(sum_id or 0)


def content_digest(ids: np.ndarray, matrix: np.ndarray) -> str:
    """SHA-256 of the template ids and vectors an index is built from."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ids, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(matrix, dtype="<f4").tobytes())
    return digest.hexdigest()


def load_gallery_matrix(session: Session, gallery_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = session.execute(
        select(FaceTemplate.id, FaceTemplate.subject_id, FaceTemplate.vector)
        .where(FaceTemplate.gallery_id == gallery_id)
        .order_by(FaceTemplate.id)
    ).all()
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    subjects = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    matrix = np.stack([np.asarray(r[2], dtype=np.float32) for r in rows])
    return ids, subjects, matrix


@dataclass
class _GalleryCache:
    signature: Signature
    ids: np.ndarray
    subjects: np.ndarray
    matrix: np.ndarray
    ann: Index | None = None
    stale: bool = False  # invalidated: reload before the next search, update ``ann`` from it
    removed_since_build: int = 0  # templates removed from ``ann`` in place (they degrade the graph)

    @cached_property
    def digest(self) -> str:
        """``content_digest`` of these templates, hashed once (0.25 s at 100k): the check of a
        saved index and the stamp of a new one both need it."""
        return content_digest(self.ids, self.matrix)

    @property
    def index(self) -> Index:
        """``ann`` where the caller has made sure it is built."""
        if self.ann is None:
            raise RuntimeError("the approximate index is not built")
        return self.ann


class GallerySearch:
    """Search one backend's galleries; thread-safe, one instance per service."""

    def __init__(
        self,
        index_dir: Path | None,
        ann_min_templates: int = 20_000,
        dialect: str = "sqlite",
        build_in_background: bool = True,
        sealer: Sealer | None = None,
    ) -> None:
        self.index_dir = index_dir
        self.sealer = sealer  # the saved index holds the templates: sealed like them
        self.ann_min_templates = ann_min_templates
        self.dialect = dialect
        self.build_in_background = build_in_background
        self._caches: dict[int, _GalleryCache] = {}
        self._lock = threading.Lock()
        self._builds: dict[int, threading.Thread] = {}  # gallery id -> its background usearch build
        self._closed = False
        # usearch indexes are updated in place; searches and updates take turns on them.
        self._ann_lock = threading.Lock()

    # -- public ---------------------------------------------------------------------------
    def search(
        self, session: Session, gallery_id: int, model_id: str, queries: np.ndarray, k: int, exact: bool | None = None
    ) -> list[list[Hit]]:
        """Top ``k`` templates per query row, best first."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        signature = gallery_signature(session, gallery_id)
        if signature[0] == 0:
            return [[] for _ in queries]
        use_ann = (signature[0] >= self.ann_min_templates) if exact is None else not exact
        if use_ann and self.dialect == "postgresql":
            return self._pgvector_search(session, gallery_id, model_id, queries, min(k, signature[0]))
        cache = self._cache(session, gallery_id, signature, build_ann=use_ann)
        if use_ann and cache.ann is not None:
            return self._usearch(cache, queries, k)
        return self._exact(cache, queries, k)

    def invalidate(self, gallery_id: int) -> None:
        """The gallery's templates changed: reload them before the next search (the approximate
        index is kept, to be updated rather than rebuilt)."""
        with self._lock:
            cache = self._caches.get(gallery_id)
            if cache is not None:
                cache.stale = True

    def forget(self, gallery_id: int) -> None:
        """Drop everything held for a gallery (when it is deleted)."""
        with self._lock:
            self._caches.pop(gallery_id, None)

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

    # -- exact ----------------------------------------------------------------------------
    @staticmethod
    def _exact(cache: _GalleryCache, queries: np.ndarray, k: int) -> list[list[Hit]]:
        scores = queries @ cache.matrix.T
        k = min(k, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out = []
        for row, cols in enumerate(top):
            cols = cols[np.argsort(-scores[row, cols])]
            out.append([Hit(int(cache.ids[c]), int(cache.subjects[c]), float(scores[row, c])) for c in cols])
        return out

    def _cache(self, session: Session, gallery_id: int, signature: Signature, build_ann: bool) -> _GalleryCache:
        with self._lock:
            cache = self._caches.get(gallery_id)
            if cache is None or cache.stale or cache.signature != signature:
                ids, subjects, matrix = load_gallery_matrix(session, gallery_id)
                # The rows read may postdate the signature: key the cache by what was read.
                read_signature = (len(ids), int(ids.max(initial=0)), int(ids.sum()))
                fresh = _GalleryCache(read_signature, ids, subjects, matrix)
                if cache is not None and cache.ann is not None and len(ids):
                    self._update_usearch(gallery_id, cache, fresh)
                cache = fresh
                self._caches[gallery_id] = cache
                self._forget_deleted_galleries(session)
            if build_ann and cache.ann is None and gallery_id not in self._builds:
                # (While a build is under way, searches go exact without looking at the disk:
                # the file's check hashes the whole gallery.)
                cache.ann = self._load_usearch(gallery_id, cache)
                if cache.ann is None and self.build_in_background:
                    self._start_build(gallery_id, cache)
                elif cache.ann is None:
                    cache.ann = self._build_usearch(cache)
                    self._save_usearch(gallery_id, cache)
                cache.removed_since_build = 0
            return cache

    def _forget_deleted_galleries(self, session: Session) -> None:
        existing = set(session.scalars(select(Gallery.id)))
        for gallery_id in [g for g in self._caches if g not in existing]:
            del self._caches[gallery_id]

    # -- usearch (beside SQLite) ----------------------------------------------------------
    def _index_path(self, gallery_id: int) -> Path | None:
        if self.index_dir is None:
            return None
        return self.index_dir / f"gallery_{gallery_id}.usearch"

    @staticmethod
    def _new_usearch_index(ndim: int) -> Index:
        from usearch.index import Index

        return Index(
            ndim=ndim,
            metric="cos",
            dtype="f32",
            connectivity=USEARCH_CONNECTIVITY,
            expansion_add=USEARCH_EXPANSION_ADD,
            expansion_search=USEARCH_EXPANSION_SEARCH,
        )

    def _load_usearch(self, gallery_id: int, cache: _GalleryCache):
        """The index saved for exactly these templates, or None."""
        path = self._index_path(gallery_id)
        if path is None:
            return None
        stamp_path = path.with_suffix(".signature")
        if not (path.exists() and stamp_path.exists()):
            return None
        try:
            saved = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            return None
        if saved != self._stamp(cache):
            return None
        index = self._new_usearch_index(int(cache.matrix.shape[1]))
        try:
            data = path.read_bytes()
            if self.sealer is not None:
                data = self.sealer.open(data, b"usearch")
            elif is_sealed(data):
                return None  # sealed by a service with a key this one lacks: rebuild
            index.load(bytearray(data))
        except Exception:  # noqa: BLE001 - a damaged file (or one sealed with another key) is rebuilt
            return None
        return index if len(index) == len(cache.ids) else None

    def _build_usearch(self, cache: _GalleryCache):
        index = self._new_usearch_index(int(cache.matrix.shape[1]))
        index.add(cache.ids, cache.matrix, threads=USEARCH_ADD_THREADS)
        return index

    def _start_build(self, gallery_id: int, cache: _GalleryCache) -> None:
        """Build ``cache``'s index on a thread (one per gallery at a time); searches stay exact
        until it is adopted. Called under ``_lock``."""
        if gallery_id in self._builds or self._closed:
            return
        thread = threading.Thread(
            target=self._build_in_background, args=(gallery_id, cache), name=f"usearch-build-{gallery_id}",
            daemon=True,
        )
        self._builds[gallery_id] = thread
        thread.start()

    def _build_in_background(self, gallery_id: int, built: _GalleryCache) -> None:
        try:
            index = self._build_usearch(built)
            with self._lock:
                current = self._caches.get(gallery_id)
                if self._closed or current is None or current.ann is not None:
                    return
                built.ann = index
                built.removed_since_build = 0
                if current is built:
                    self._save_usearch(gallery_id, built)
                else:
                    # The gallery changed during the build: bring the new index up to date in
                    # place when that is cheap; otherwise the next search starts another build.
                    self._update_usearch(gallery_id, built, current)
        except Exception:  # searches stay exact; the next one tries again
            logger.exception("building the approximate index of gallery %s failed", gallery_id)
        finally:
            with self._lock:
                self._builds.pop(gallery_id, None)

    def _stamp(self, cache: _GalleryCache) -> dict:
        return {
            "signature": list(cache.signature),
            "digest": cache.digest,
            "ndim": int(cache.matrix.shape[1]),
            "connectivity": USEARCH_CONNECTIVITY,
            "expansion_add": USEARCH_EXPANSION_ADD,
        }

    def _save_usearch(self, gallery_id: int, cache: _GalleryCache) -> None:
        path = self._index_path(gallery_id)
        if path is None:
            return
        stamp_path = path.with_suffix(".signature")
        stamp = self._stamp(cache)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The stamp goes first and comes back last, each file replaced atomically: a crash in
        # between leaves an index without a stamp, which is rebuilt, never trusted.
        stamp_path.unlink(missing_ok=True)
        suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
        tmp = path.with_name(path.name + suffix)
        saved = cache.index.save()  # no path: the index as bytes
        if saved is None:
            raise RuntimeError("usearch returned no bytes for the index")
        data = bytes(saved)
        tmp.write_bytes(self.sealer.seal(data, b"usearch") if self.sealer is not None else data)
        os.replace(tmp, path)
        tmp_stamp = stamp_path.with_name(stamp_path.name + suffix)
        tmp_stamp.write_text(json.dumps(stamp))
        os.replace(tmp_stamp, stamp_path)

    def _update_usearch(self, gallery_id: int, old: _GalleryCache, new: _GalleryCache) -> None:
        """Carry ``old.ann`` over to ``new``, changed in place to hold exactly ``new``'s templates;
        leave ``new.ann`` empty (a rebuild follows) when that would not be cheaper or as good."""
        if old.matrix.shape[1] != new.matrix.shape[1]:
            return
        common, at_old, at_new = np.intersect1d(old.ids, new.ids, assume_unique=True, return_indices=True)
        changed = common[np.any(old.matrix[at_old] != new.matrix[at_new], axis=1)]  # ids reused by SQLite
        removed = np.union1d(np.setdiff1d(old.ids, new.ids, assume_unique=True), changed)
        added_rows = np.flatnonzero(~np.isin(new.ids, old.ids, assume_unique=True) | np.isin(new.ids, changed))
        removed_total = old.removed_since_build + len(removed)
        limit = USEARCH_MAX_CHURN * len(new.ids)
        if len(removed) + len(added_rows) > limit or removed_total > limit:
            return
        with self._ann_lock:
            if len(removed):
                old.index.remove(removed.astype(np.uint64))
            if len(added_rows):
                old.index.add(new.ids[added_rows], new.matrix[added_rows], threads=USEARCH_ADD_THREADS)
        # Searches still holding ``old`` keep working: ids they do not know are dropped.
        new.ann = old.ann
        new.removed_since_build = removed_total
        self._save_usearch(gallery_id, new)

    def _usearch(self, cache: _GalleryCache, queries: np.ndarray, k: int) -> list[list[Hit]]:
        k = min(k, len(cache.ids))
        with self._ann_lock:
            matches = cache.index.search(queries, k)
        keys = np.atleast_2d(matches.keys).astype(np.int64)
        distances = np.atleast_2d(matches.distances)
        # cache.ids is sorted (read ORDER BY id): find each key's row without a per-search dict;
        # a key the cache does not hold (an index updated for newer rows) is dropped.
        rows = np.clip(np.searchsorted(cache.ids, keys), 0, len(cache.ids) - 1)
        known = cache.ids[rows] == keys
        out = []
        for q in range(len(queries)):
            out.append(
                [
                    Hit(int(keys[q, j]), int(cache.subjects[rows[q, j]]), float(1.0 - distances[q, j]))
                    for j in range(keys.shape[1])
                    if known[q, j]
                ]
            )
        return out

    # -- pgvector -------------------------------------------------------------------------
    def _pgvector_search(
        self, session: Session, gallery_id: int, model_id: str, queries: np.ndarray, k: int
    ) -> list[list[Hit]]:
        """pgvector (0.6) filters gallery and model *after* the HNSW scan: when the table holds
        other galleries, the ``ef_search`` candidates of a query may hold fewer than ``k`` of
        this gallery's templates. Such a starved answer is asked again as an exact scan of the
        gallery's rows, so a search never comes back short (or empty) for that reason."""
        out = [self._pgvector(session, gallery_id, model_id, q, k) for q in queries]
        starved = [i for i, hits in enumerate(out) if len(hits) < k]
        if starved:
            logger.info("gallery %s: %d of %d approximate searches came back short; searched exactly",
                        gallery_id, len(starved), len(out))
            # Plain index scans (the HNSW one among them) off and the exact plans on, inside a
            # savepoint whose rollback restores the planner settings of the transaction.
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
