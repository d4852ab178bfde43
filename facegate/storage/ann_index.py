"""The index of a big gallery: a coarse scan of 4-bit product-quantized codes, then exact rescoring.

Chosen by measurement (``bench/index_choice.py``; figures in bench/README.md). ArcFace templates
of different people are nearly orthogonal in 512 dimensions, so the data has no cluster or
neighbourhood structure for an index to exploit: on real LFW templates among Gaussian
distractors with real faces' covariance, an inverted file (IVF) probing 10% of its lists finds the
exact top-1 for only 87% of queries, and an HNSW graph at ``efSearch`` 256 for 93% at 12 ms
(100k templates, after a 6-minute build). Scanning *every* template, but as 64-byte codes with
SIMD lookup tables (faiss ``IndexPQFastScan``), then rescoring the best ``rerank`` candidates
on their float32 vectors, finds the exact top-1 for 99-100% of queries, gives exact search's
decision on every one, and its scores *are* the exact scores.

Rows are appended; a removed template is a tombstone until the next rebuild (faiss's fast-scan
codes cannot be removed in place), so adding or removing costs the next search nothing
measurable. The float32 vectors are kept in fixed-size chunks, so the gallery is never copied
as it grows.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss

# 4-bit codes over sub-vectors of this many dimensions (512 -> 128 sub-quantizers, 64 bytes).
DIMS_PER_CODE = 4
# Candidates rescored exactly per query (bench/index_choice.py: see bench/README.md).
DEFAULT_RERANK = 500
TRAIN_SAMPLE = 65_536
MIN_TRAIN = 256
CHUNK_ROWS = 65_536
# Rebuilt (in the background) once tombstones are this share of the rows, or the gallery has
# grown this many times past the sample its codebook was trained on.
MAX_DEAD_SHARE = 0.2
REBUILD_GROWTH = 8.0


_configured = False


def _faiss():
    """faiss, set to one OpenMP thread: one search is a millisecond of work, and on a busy
    machine OpenMP's hand-offs between threads cost more than that (builds ask for more)."""
    global _configured
    import faiss

    if not _configured:
        faiss.omp_set_num_threads(1)
        _configured = True
    return faiss


class _Chunks:
    """Float32 rows in fixed-size chunks: appending never copies what is there."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.chunks: list[np.ndarray] = []
        self.rows = 0

    def append(self, matrix: np.ndarray) -> None:
        start = 0
        while start < len(matrix):
            offset = self.rows % CHUNK_ROWS
            if offset == 0:
                self.chunks.append(np.empty((CHUNK_ROWS, self.dimension), np.float32))
            take = min(CHUNK_ROWS - offset, len(matrix) - start)
            self.chunks[-1][offset : offset + take] = matrix[start : start + take]
            self.rows += take
            start += take

    def take(self, rows: np.ndarray) -> np.ndarray:
        if len(self.chunks) == 1:
            return self.chunks[0][rows]
        out = np.empty((len(rows), self.dimension), np.float32)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        bounds = np.searchsorted(ordered, np.arange(len(self.chunks) + 1) * CHUNK_ROWS)
        for number, chunk in enumerate(self.chunks):
            lo, hi = bounds[number], bounds[number + 1]
            if lo < hi:
                out[order[lo:hi]] = chunk[ordered[lo:hi] - number * CHUNK_ROWS]
        return out

    def all(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros((0, self.dimension), np.float32)
        return np.concatenate(self.chunks)[: self.rows]


class ScanIndex:
    """One gallery's index; one search or change at a time (each takes about a millisecond)."""

    def __init__(self, codes: faiss.IndexPQFastScan, dimension: int, trained_on: int, rerank: int = DEFAULT_RERANK):
        self.codes = codes
        self.dimension = dimension
        self.trained_on = trained_on
        self.rerank = rerank
        self.vectors = _Chunks(dimension)
        self.template_ids = np.zeros(0, np.int64)
        self.subject_ids = np.zeros(0, np.int64)
        self.alive = np.zeros(0, bool)
        self.live_rows = 0  # alive.sum(), kept as rows come and go (a sum over 1M rows is 0.5 ms)
        self._lock = threading.Lock()

    # -- building -----------------------------------------------------------------------------
    @classmethod
    def build(
        cls, ids: np.ndarray, subjects: np.ndarray, matrix: np.ndarray, threads: int = 1, seed: int = 0
    ) -> ScanIndex:
        faiss = _faiss()
        n, d = matrix.shape
        codes = faiss.IndexPQFastScan(d, max(1, d // DIMS_PER_CODE), 4, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = matrix if n <= TRAIN_SAMPLE else matrix[np.sort(rng.choice(n, TRAIN_SAMPLE, replace=False))]
        if len(sample) < MIN_TRAIN:
            # A tiny gallery (tests, ann_min_templates near 0): k-means needs 16 points a code;
            # jittered copies give it those (the rescoring stays exact whatever the codes).
            copies = -(-MIN_TRAIN // max(len(sample), 1))
            sample = np.repeat(sample, copies, axis=0)
            sample = sample + rng.normal(0, 0.01, sample.shape).astype(np.float32)
        faiss.omp_set_num_threads(max(1, threads))  # (process-wide: searches meanwhile may use them too)
        try:
            codes.train(np.ascontiguousarray(sample, np.float32))
            index = cls(codes, d, min(n, TRAIN_SAMPLE))
            index.add(ids, subjects, matrix)
        finally:
            faiss.omp_set_num_threads(1)
        return index

    # -- state --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.live_rows

    @property
    def rows(self) -> int:
        return len(self.template_ids)

    @property
    def nbytes(self) -> int:
        return self.rows * (self.dimension * 4 + self.dimension // DIMS_PER_CODE // 2 + 8 + 1)

    def worn(self) -> bool:
        """Time for a rebuild: many tombstones, or a codebook trained on a far smaller gallery."""
        dead = self.rows - len(self)
        return dead > MAX_DEAD_SHARE * max(self.rows, 1) or (
            self.trained_on < TRAIN_SAMPLE and self.rows > REBUILD_GROWTH * max(self.trained_on, 1)
        )

    # -- changes ------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, subjects: np.ndarray, matrix: np.ndarray) -> None:
        """Add templates; one already held under the same id is replaced (SQLite may reuse the
        highest id after a delete, and a catch-up may replay a change already applied)."""
        if not len(ids):
            return
        ids = np.asarray(ids, np.int64)
        matrix = np.ascontiguousarray(matrix, np.float32)
        with self._lock:
            self._kill(ids)
            self.codes.add(matrix)
            self.vectors.append(matrix)
            self.template_ids = np.concatenate([self.template_ids, ids])
            self.subject_ids = np.concatenate([self.subject_ids, np.asarray(subjects, np.int64)])
            self.alive = np.concatenate([self.alive, np.ones(len(ids), bool)])
            self.live_rows += len(ids)

    def remove(self, ids: np.ndarray) -> int:
        if not len(ids) or not self.rows:
            return 0
        with self._lock:
            return self._kill(np.asarray(ids, np.int64))

    def _kill(self, ids: np.ndarray) -> int:
        if not self.rows:
            return 0
        hit = self.alive & np.isin(self.template_ids, ids)
        self.alive[hit] = False
        gone = int(hit.sum())
        self.live_rows -= gone
        return gone

    def live(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(template ids, subject ids, vectors) of every live row, by template id: what a
        rebuild starts from."""
        with self._lock:
            keep = np.flatnonzero(self.alive)
            keep = keep[np.argsort(self.template_ids[keep], kind="stable")]
            return self.template_ids[keep], self.subject_ids[keep], self.vectors.take(keep)

    # -- search -------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, exact: bool = False, rerank: int | None = None):
        """(scores, template ids, subject ids) of the top ``k`` per query row, best first, the
        scores exact; id -1 pads a short answer. ``exact`` rescores every row (exact search)."""
        queries = np.ascontiguousarray(queries, np.float32)
        scores_out = np.full((len(queries), k), -np.inf, np.float32)
        rows_out = np.full((len(queries), k), -1, np.int64)
        with self._lock:
            if self.rows == 0:
                return scores_out, rows_out, rows_out.copy()
            if exact:
                self._exact(queries, k, scores_out, rows_out)
            else:
                dead = self.rows - self.live_rows
                want = min(self.rows, max(k, rerank or self.rerank) + dead)
                _, candidates = self.codes.search(queries, want)
                for q, row in enumerate(candidates):
                    row = row[row >= 0]
                    row = row[self.alive[row]]
                    scores = self.vectors.take(row) @ queries[q]
                    top = np.argsort(-scores, kind="stable")[:k]
                    scores_out[q, : len(top)], rows_out[q, : len(top)] = scores[top], row[top]
            found = rows_out >= 0
            ids = np.where(found, self.template_ids[np.maximum(rows_out, 0)], -1)
            subjects = np.where(found, self.subject_ids[np.maximum(rows_out, 0)], -1)
        return scores_out, ids, subjects

    def _exact(self, queries: np.ndarray, k: int, scores_out: np.ndarray, rows_out: np.ndarray) -> None:
        """Every live row scored, a chunk at a time (never a copy of the gallery)."""
        for number, chunk in enumerate(self.vectors.chunks):
            first = number * CHUNK_ROWS
            n = min(CHUNK_ROWS, self.rows - first)
            scores = queries @ chunk[:n].T
            scores[:, ~self.alive[first : first + n]] = -np.inf
            kk = min(scores_out.shape[1], n)
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            both = np.concatenate([scores_out, np.take_along_axis(scores, part, axis=1)], axis=1)
            rows = np.concatenate([rows_out, part + first], axis=1)
            top = np.argsort(-both, axis=1, kind="stable")[:, : scores_out.shape[1]]
            scores_out[:] = np.take_along_axis(both, top, axis=1)
            rows_out[:] = np.take_along_axis(rows, top, axis=1)
        rows_out[~np.isfinite(scores_out)] = -1

    # -- saving -------------------------------------------------------------------------------
    # A flat container: magic, header length, a JSON header (the caller's ``meta`` and where each
    # array lies), then the arrays' raw bytes, each at a 64-byte boundary. Arrays are read as views
    # of the loaded bytes: np.savez's zip went through every array in 256 KiB reads with a CRC, and
    # a 1M-template index took 26-64 s to load (bench/README.md, scale).
    def to_bytes(self, meta: dict | None = None) -> bytes:
        with self._lock:
            rows, dimension = self.vectors.rows, self.dimension
            # Each array as its pieces: the vectors straight from their chunks (no 2 GB
            # concatenation at 1M), the others whole.
            pieces = {
                "codes": [_faiss().serialize_index(self.codes)],
                "vectors": [c[: min(CHUNK_ROWS, rows - n * CHUNK_ROWS)] for n, c in enumerate(self.vectors.chunks)],
                "template_ids": [self.template_ids],
                "subject_ids": [self.subject_ids],
                "alive": [self.alive],
            }
            shapes = {name: list(parts[0].shape) for name, parts in pieces.items() if name != "vectors"}
            shapes["vectors"] = [rows, dimension]
            dtypes = {name: parts[0].dtype.str for name, parts in pieces.items() if parts}
            dtypes["vectors"] = np.dtype(np.float32).str
            placed, offset = {}, 0
            for name, parts in pieces.items():
                placed[name] = {"dtype": dtypes[name], "shape": shapes[name], "offset": offset}
                offset += _aligned(sum(p.nbytes for p in parts))
            header = json.dumps({
                "meta": meta or {}, "arrays": placed,
                "index": {"dimension": self.dimension, "trained_on": self.trained_on, "rerank": self.rerank},
            }).encode()
            start = _aligned(len(_MAGIC) + 8 + len(header))
            out = bytearray(start + offset)
            out[: len(_MAGIC)] = _MAGIC
            out[len(_MAGIC) : len(_MAGIC) + 8] = len(header).to_bytes(8, "little")
            out[len(_MAGIC) + 8 : len(_MAGIC) + 8 + len(header)] = header
            for name, parts in pieces.items():
                at = start + placed[name]["offset"]
                for part in parts:
                    out[at : at + part.nbytes] = np.ascontiguousarray(part).view(np.uint8).reshape(-1).data
                    at += part.nbytes
            return bytes(out)

    @staticmethod
    def read_meta(data: bytes | memoryview) -> dict:
        """The ``meta`` saved with an index, without reading the arrays (ValueError: not an index)."""
        return _header(data)[0]["meta"]

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> ScanIndex:
        faiss = _faiss()
        header, start = _header(data)

        def array(name: str) -> np.ndarray:
            spec = header["arrays"][name]
            dtype = np.dtype(spec["dtype"])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            return np.frombuffer(data, dtype, count, start + spec["offset"]).reshape(spec["shape"])

        info = header["index"]
        codes = faiss.deserialize_index(array("codes"))  # copied: the index owns its codes
        index = cls(codes, int(info["dimension"]), int(info["trained_on"]), int(info["rerank"]))
        index.vectors.append(array("vectors"))  # copied into writable chunks
        index.template_ids = array("template_ids").astype(np.int64)
        index.subject_ids = array("subject_ids").astype(np.int64)
        index.alive = array("alive").astype(bool)
        index.live_rows = int(index.alive.sum())
        if codes.ntotal != index.rows or index.vectors.rows != index.rows:
            raise ValueError("the saved index is inconsistent")
        return index


_MAGIC = b"FGSCAN2\n"
_ALIGN = 64


def _header(data: bytes | memoryview) -> tuple[dict, int]:
    """The container's header and where its arrays start."""
    view = memoryview(data)
    if bytes(view[: len(_MAGIC)]) != _MAGIC:
        raise ValueError("not a saved FaceGate index")
    size = int.from_bytes(view[len(_MAGIC) : len(_MAGIC) + 8], "little")
    header = json.loads(bytes(view[len(_MAGIC) + 8 : len(_MAGIC) + 8 + size]))
    return header, _aligned(len(_MAGIC) + 8 + size)


def _aligned(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN
