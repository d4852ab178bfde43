"""Which nearest-neighbour index for identification: every candidate on the same templates and queries.

Usage (needs out/lfw_all_arcface.npz, see bench/README.md)::

    .venv/bin/python bench/index_choice.py --sizes 100000 --candidates all
    .venv/bin/python bench/index_choice.py --sizes 1000000 --candidates ivf-flat,ivf-sq8-refine

The gallery is the one ``bench/service.py`` builds (real LFW templates plus Gaussian distractors
with real faces' covariance); queries are other photos of enrolled people and photos of people
never enrolled. Per candidate: build time, bytes held, and per search-time setting the time of
one query (p50, p95, one thread), recall@1 against exact float32 search, and the share of
queries given the same decision (the subject over the default identify threshold, or unknown).
No database: this compares indexes; bench/scale.py measures the chosen one inside FaceGate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _harness import DEFAULT_LFW, DEFAULT_NPZ, load_warning, percentiles  # noqa: E402
from service import load_lfw, plan_gallery  # noqa: E402

K = 20


@dataclass
class Candidate:
    name: str
    params: list[int]  # search-time settings to sweep (nprobe, ef)
    index: object = None
    build_s: float = 0.0
    nbytes: int = 0
    extra: dict = field(default_factory=dict)


def build(c: Candidate, matrix: np.ndarray, threads: int) -> None:
    import faiss

    faiss.omp_set_num_threads(threads)
    n, d = matrix.shape
    nlist = int(max(64, min(16384, 4 * np.sqrt(n))))
    started = time.perf_counter()
    if c.name == "facegate-scan":  # FaceGate's own index class, as the service uses it
        from facegate.storage.ann_index import ScanIndex

        index = ScanIndex.build(np.arange(n), np.arange(n), matrix, threads=1)
        c.nbytes = index.nbytes
    elif c.name.startswith("ivf"):
        quantizer = faiss.IndexFlatIP(d)
        if c.name == "ivf-flat":
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        else:
            qtype = faiss.ScalarQuantizer.QT_8bit if "sq8" in c.name else faiss.ScalarQuantizer.QT_fp16
            index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, qtype, faiss.METRIC_INNER_PRODUCT)
        train = matrix[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)]
        index.train(train)
        index.add(matrix)
        if c.name.endswith("refine"):
            index = faiss.IndexRefineFlat(index)
            index.add(matrix) if index.ntotal == 0 else None
        c.extra["nlist"] = nlist
        c.nbytes = matrix.nbytes if c.name == "ivf-flat" else (n * d * (1 if "sq8" in c.name else 2))
        if c.name.endswith("refine"):
            c.nbytes += matrix.nbytes
    elif c.name.startswith("hnsw"):
        if c.name == "hnsw-flat":
            index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, 32, faiss.METRIC_INNER_PRODUCT)
            index.train(matrix[:100_000])
        index.hnsw.efConstruction = 80
        index.add(matrix)
        c.nbytes = n * d * (4 if c.name == "hnsw-flat" else 1) + n * 32 * 2 * 4
    elif c.name.startswith("usearch"):
        from usearch.index import Index

        dtype = c.name.split("-")[1]
        index = Index(ndim=d, metric="ip", dtype=dtype, connectivity=16, expansion_add=128)
        index.add(np.arange(n), matrix, threads=1)
        c.nbytes = int(index.memory_usage)
    else:
        raise SystemExit(f"unknown candidate {c.name}")
    c.build_s = time.perf_counter() - started
    c.index = index


def search(c: Candidate, q: np.ndarray, param: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    if c.name == "facegate-scan":
        scores, ids, _ = c.index.search(q, K, rerank=param)  # type: ignore[attr-defined]
        return ids[0], scores[0]
    if c.name.startswith("usearch"):
        m = c.index.search(q, K, exact=False)  # type: ignore[attr-defined]
        return np.atleast_2d(m.keys)[0].astype(np.int64), 1.0 - np.atleast_2d(m.distances)[0]
    if c.name.endswith("refine"):
        params = faiss.IndexRefineSearchParameters(k_factor=4, base_index_params=faiss.SearchParametersIVF(nprobe=param))
        scores, ids = c.index.search(q, K, params=params)  # type: ignore[attr-defined]
    elif c.name.startswith("ivf"):
        scores, ids = c.index.search(q, K, params=faiss.SearchParametersIVF(nprobe=param))  # type: ignore[attr-defined]
    else:
        scores, ids = c.index.search(q, K, params=faiss.SearchParametersHNSW(efSearch=param))  # type: ignore[attr-defined]
    return ids[0], scores[0]


def set_param(c: Candidate, param: int) -> None:
    if c.name.startswith("usearch"):
        c.index.expansion_search = param  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--candidates", default="all")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="build threads (searches run one at a time)")
    parser.add_argument("--npz", default=DEFAULT_NPZ)
    parser.add_argument("--lfw", default=DEFAULT_LFW)
    args = parser.parse_args()
    import faiss

    from facegate.calibration import default_calibration
    from facegate.gallery.schemas import GallerySettings

    every = {
        "facegate-scan": [100, 500, 2000],
        "ivf-flat": [8, 16, 32, 64, 128],
        "ivf-fp16": [16, 32, 64, 128],
        "ivf-sq8-refine": [16, 32, 64, 128],
        "hnsw-flat": [64, 128, 256],
        "hnsw-sq8": [64, 128, 256],
        "usearch-f16": [128, 256, 512],
        "usearch-i8": [128, 256, 512],
    }
    names = list(every) if args.candidates == "all" else args.candidates.split(",")
    lfw = load_lfw(__import__("pathlib").Path(args.npz), __import__("pathlib").Path(args.lfw), strangers=200, seed=7)
    print(load_warning())
    for size in [int(s) for s in args.sizes.split(",")]:
        plan = plan_gallery(lfw, size, requests=1, recall_queries=args.queries, seed=7)
        matrix = np.ascontiguousarray(np.stack([v for _, _, v in plan.rows]).astype(np.float32))
        subjects = np.arange(len(matrix))  # one template per subject here
        kinds = np.array([k for k, _ in plan.recall_queries])
        queries = np.ascontiguousarray(lfw.vectors[[r for _, r in plan.recall_queries]])
        threshold, _ = default_calibration(lfw.model_id).identify_threshold(GallerySettings().identify_fpir, size)
        exact_scores = queries @ matrix.T
        exact_top = np.argmax(exact_scores, axis=1)
        exact_best = exact_scores[np.arange(len(queries)), exact_top]
        one = []
        for q in queries[:50]:
            t = time.perf_counter()
            s = matrix @ q
            np.argpartition(-s, K)[:K]
            one.append((time.perf_counter() - t) * 1000)
        print(f"\n== {size:,} templates x {matrix.shape[1]}; {len(queries)} queries ({(kinds == 'stranger').sum()} "
              f"strangers); identify threshold {threshold:.4f}; exact float32 one query: {fmt(percentiles(one))}; "
              f"{matrix.nbytes / 2**20:.0f} MiB")
        del exact_scores
        exact_decision = np.where(exact_best >= threshold, exact_top, -1)
        for name in names:
            c = Candidate(name, every[name])
            try:
                build(c, matrix, args.threads)
            except Exception as exc:  # noqa: BLE001 - report and go on with the others
                print(f"{name}: build failed: {exc}")
                continue
            print(f"-- {name}: build {c.build_s:.1f} s, ~{c.nbytes / 2**20:.0f} MiB {c.extra or ''}")
            faiss.omp_set_num_threads(1)
            for param in c.params:
                set_param(c, param)
                times, top, best = [], [], []
                for q in queries:
                    t = time.perf_counter()
                    ids, scores = search(c, q[None], param)
                    times.append((time.perf_counter() - t) * 1000)
                    top.append(ids[0])
                    best.append(scores[0])
                top_a, best_a = np.array(top), np.array(best)
                hit = (top_a == exact_top) | (np.abs(best_a - exact_best) < 1e-6)
                decision = np.where(best_a >= threshold, subjects[np.clip(top_a, 0, len(subjects) - 1)], -1)
                same = decision == exact_decision
                print(f"   param {param:>4}: {fmt(percentiles(times))}  recall@1 {hit.mean():.4f} "
                      f"(enrolled {hit[kinds == 'enrolled'].mean():.4f}, strangers {hit[kinds == 'stranger'].mean():.4f})"
                      f"  same decision {same.mean():.4f}")
            faiss.omp_set_num_threads(args.threads)
            c.index = None


def fmt(p: dict) -> str:
    return f"p50 {p['p50']:.2f} ms p95 {p['p95']:.2f} ms"


if __name__ == "__main__":
    main()
