"""Nearest-template search for identification.

* Exact: all of a gallery's templates in one float32 matrix, one matrix product per query.
  Used for small galleries, and as the reference the approximate indexes are measured on.
* Approximate beside SQLite: a usearch HNSW index per gallery, saved under the data folder.
* Approximate on PostgreSQL: pgvector's HNSW index (created by the migrations), queried in SQL.

Caches are keyed by a signature of the gallery's templates in the database (count, max id,
sum of ids), so an index that drifted from the database (another process enrolled, a crash
mid-write) is detected and rebuilt instead of serving stale answers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from facegate.storage.models import FaceTemplate


@dataclass(frozen=True)
class Hit:
    template_id: int
    subject_id: int
    score: float


Signature = tuple[int, int, int]


def gallery_signature(session: Session, gallery_id: int) -> Signature:
    count, max_id, sum_id = session.execute(
        select(func.count(FaceTemplate.id), func.max(FaceTemplate.id), func.sum(FaceTemplate.id)).where(
            FaceTemplate.gallery_id == gallery_id
        )
    ).one()
    return int(count or 0), int(max_id or 0), int(sum_id or 0)


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
    ann: object | None = None


class GallerySearch:
    """Search one backend's galleries; thread-safe, one instance per service."""

    def __init__(self, index_dir: Path | None, ann_min_templates: int = 20_000, dialect: str = "sqlite") -> None:
        self.index_dir = index_dir
        self.ann_min_templates = ann_min_templates
        self.dialect = dialect
        self._caches: dict[int, _GalleryCache] = {}
        self._lock = threading.Lock()

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
            return [self._pgvector(session, gallery_id, model_id, q, k) for q in queries]
        cache = self._cache(session, gallery_id, signature, build_ann=use_ann)
        if use_ann and cache.ann is not None:
            return self._usearch(cache, queries, k)
        return self._exact(cache, queries, k)

    def invalidate(self, gallery_id: int) -> None:
        with self._lock:
            self._caches.pop(gallery_id, None)

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
            if cache is None or cache.signature != signature:
                ids, subjects, matrix = load_gallery_matrix(session, gallery_id)
                # The rows read may postdate the signature: key the cache by what was read.
                read_signature = (len(ids), int(ids.max(initial=0)), int(ids.sum()))
                cache = _GalleryCache(read_signature, ids, subjects, matrix)
                self._caches[gallery_id] = cache
            if build_ann and cache.ann is None:
                cache.ann = self._load_or_build_usearch(gallery_id, cache)
            return cache

    # -- usearch (beside SQLite) ----------------------------------------------------------
    def _index_path(self, gallery_id: int) -> Path | None:
        if self.index_dir is None:
            return None
        return self.index_dir / f"gallery_{gallery_id}.usearch"

    def _load_or_build_usearch(self, gallery_id: int, cache: _GalleryCache):
        from usearch.index import Index

        path = self._index_path(gallery_id)
        stamp = path.with_suffix(".signature") if path else None
        wanted = ",".join(str(v) for v in cache.signature)
        index = Index(ndim=cache.matrix.shape[1], metric="cos", dtype="f32", connectivity=32, expansion_add=200, expansion_search=200)
        if path and path.exists() and stamp and stamp.exists() and stamp.read_text() == wanted:
            index.load(str(path))
            return index
        index.add(cache.ids, cache.matrix, threads=2)
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            index.save(str(path))
            stamp.write_text(wanted)
        return index

    @staticmethod
    def _usearch(cache: _GalleryCache, queries: np.ndarray, k: int) -> list[list[Hit]]:
        k = min(k, len(cache.ids))
        matches = cache.ann.search(queries, k)
        subject_of = dict(zip(cache.ids.tolist(), cache.subjects.tolist()))
        keys = np.atleast_2d(matches.keys)
        distances = np.atleast_2d(matches.distances)
        out = []
        for row in range(len(queries)):
            hits = [
                Hit(int(key), int(subject_of[int(key)]), float(1.0 - dist))
                for key, dist in zip(keys[row], distances[row])
                if int(key) in subject_of
            ]
            out.append(hits)
        return out

    # -- pgvector -------------------------------------------------------------------------
    @staticmethod
    def _pgvector(session: Session, gallery_id: int, model_id: str, query: np.ndarray, k: int) -> list[Hit]:
        dim = int(query.shape[0])
        literal = "[" + ",".join(f"{float(x):.7g}" for x in query) + "]"
        session.execute(text("SET LOCAL hnsw.ef_search = 200"))
        rows = session.execute(
            text(
                f"SELECT id, subject_id, 1 - ((vector::vector({dim})) <=> CAST(:q AS vector({dim}))) AS score "
                "FROM face_templates WHERE gallery_id = :g AND model_id = :m "
                f"ORDER BY (vector::vector({dim})) <=> CAST(:q AS vector({dim})) LIMIT :k"
            ),
            {"q": literal, "g": gallery_id, "m": model_id, "k": k},
        ).all()
        return [Hit(int(r[0]), int(r[1]), float(r[2])) for r in rows]
