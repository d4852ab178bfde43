"""The code-scan index on its own: rows in chunks, tombstones, replacement, exact mode, saving."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.storage.ann_index import CHUNK_ROWS, ScanIndex, _Chunks


def _unit(n: int, seed: int, d: int = 64) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_chunks_append_and_gather_across_chunk_boundaries():
    rows = np.random.default_rng(1).standard_normal((2 * CHUNK_ROWS + 17, 4)).astype(np.float32)
    chunks = _Chunks(4)
    chunks.append(rows[:100])
    chunks.append(rows[100:])
    wanted = np.random.default_rng(2).integers(0, len(rows), 999)
    assert np.array_equal(chunks.take(wanted), rows[wanted])
    assert np.array_equal(chunks.all(), rows)


def test_scan_matches_exact_search_and_follows_changes():
    x = _unit(3000, 3)
    ids = np.arange(10, 3010)
    index = ScanIndex.build(ids, ids % 97, x)
    queries = x[:50] + 0.02 * _unit(50, 4)
    scores, got, subjects = index.search(queries, 5)
    exact = queries @ x.T
    assert np.array_equal(got[:, 0], ids[exact.argmax(axis=1)])
    np.testing.assert_allclose(scores[:, 0], exact.max(axis=1), atol=1e-5)  # rescored exactly
    assert np.array_equal(subjects[:, 0], got[:, 0] % 97)

    assert index.remove(ids[:10]) == 10 and len(index) == 2990 and index.rows == 3000  # tombstones
    _, got, _ = index.search(x[:10], 1)
    assert not np.isin(got, ids[:10]).any()
    replacement = _unit(1, 5)
    index.add(ids[20:21], np.array([7]), replacement)  # the same id again: replaced, not doubled
    _, got, subjects = index.search(replacement, 2)
    assert got[0, 0] == ids[20] and subjects[0, 0] == 7 and got[0, 1] != ids[20]
    assert len(index) == 2990

    e_scores, e_ids, _ = index.search(queries, 3, exact=True)
    live_ids, _, live_vectors = index.live()
    reference = queries @ live_vectors.T
    assert np.array_equal(e_ids[:, 0], live_ids[reference.argmax(axis=1)])


def test_saved_and_loaded_index_answers_the_same():
    x = _unit(500, 6)
    index = ScanIndex.build(np.arange(500), np.arange(500), x)
    index.remove(np.array([3, 4]))
    loaded = ScanIndex.from_bytes(index.to_bytes())
    a = index.search(x[:20], 4)
    b = loaded.search(x[:20], 4)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert len(loaded) == 498


def test_a_tiny_gallery_builds_and_answers():
    x = _unit(3, 7)
    index = ScanIndex.build(np.array([5, 6, 7]), np.array([1, 1, 2]), x)
    scores, got, _ = index.search(x, 5)
    assert list(got[:, 0]) == [5, 6, 7] and (got[:, 3:] == -1).all() and scores[0, 0] > 0.999


def test_the_saved_form_carries_its_stamp_and_refuses_what_is_not_an_index():
    x = _unit(300, 8)
    index = ScanIndex.build(np.arange(300), np.arange(300) // 3, x)
    data = index.to_bytes(meta={"gallery": 4, "version": 9})
    assert ScanIndex.read_meta(data) == {"gallery": 4, "version": 9}
    loaded = ScanIndex.from_bytes(data)
    assert np.array_equal(loaded.live()[2], x) and loaded.subject_ids.tolist() == (np.arange(300) // 3).tolist()
    loaded.add(np.array([1000]), np.array([5]), x[:1] * -1)  # what it loaded is its own to change
    assert len(loaded) == 301 and len(index) == 300
    for junk in (b"", b"PK\x03\x04 an npz of the first format", data[:6]):
        with pytest.raises(ValueError, match="not a saved FaceGate index"):
            ScanIndex.read_meta(junk)
