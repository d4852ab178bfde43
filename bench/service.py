"""Service latency over HTTP (verify, identify) and approximate-search recall, SQLite and PostgreSQL.

Usage (from the repository root; needs out/lfw_all_arcface.npz from bench/calibrate_defaults.py
and the LFW photos in ../shared/datasets/lfw)::

    .venv/bin/python bench/service.py --sizes 1000,100000 --backends sqlite,postgresql \\
        --requests 50 --recall --json out/service_bench.json
    .venv/bin/python bench/service.py --sizes 1000 --backends sqlite --requests 10   # smoke run

For each backend and gallery size, a fresh database (a SQLite file; a database on a PostgreSQL
+ pgvector started by pgserver) gets one gallery built with ``service.import_templates``:

* real templates: the ArcFace embedding (from the npz) of the first photo of LFW people with at
  least two photos (up to half the gallery; all 1,649 of them at 100k);
* synthetic distractors for the rest, ``--distractors``:
  ``gaussian`` (default): ``normalise(mean + L z)``, z ~ N(0, I), with the mean and covariance
  (L its Cholesky factor) of the embeddings of LFW people with a single photo (never probes,
  never strangers): independent new "people" with the second-order statistics of real faces.
  Their scores against real probes, and among themselves, match real impostor scores (the run
  prints both: std 0.066-0.068 against 0.066), and they spread over the region of the embedding
  space real faces occupy, which is what makes the approximate search's job realistic;
  ``mix``: ``normalise(a*x_i + (1-a)*x_j + 0.75*|a*x_i + (1-a)*x_j|*u)`` of two such real
  embeddings, a ~ U(0.25, 0.75), u a random unit vector: real-looking scores too (std 0.059),
  but 98k mixes of ~3k parents cluster around them, which flatters the approximate index (at
  100k, usearch expansion_search 400: recall@1 0.998 with mixes, 0.972 with Gaussian ones;
  pgvector ef_search 500 on its default m=16 graph: 0.994 against 0.937). Random vectors, or
  real ones under a random rotation, would lie outside the region the queries come from.

Requests are real LFW photos (JPEG bytes) of enrolled people, a photo other than the enrolled
one: ``verify`` against the person's own subject and ``identify`` in the whole gallery, one
at a time through a real uvicorn server on 127.0.0.1 and the FaceGate client, after warm-up
requests. Each request includes decoding, detection and the embedding (~20-40 ms on 2 cores),
so the search itself is also timed at the service level (``service.ctx.search.search`` with the
probe's precomputed embedding, default path and ``exact=True``), and at the ANN sizes
identify is also timed at the service level with ``exact=True`` for comparison.

``--recall``: at every size that takes the approximate path (``ann_min_templates``, default
20,000), recall@1 of the approximate index against exact search: the share of queries whose
approximate top-1 template is the exact top-1 template. Queries: other photos of enrolled
people and photos of people never enrolled (embeddings from the npz). ``--sweep-ef`` also
measures it at other search-time candidate list sizes (usearch expansion_search; pgvector
hnsw.ef_search).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _harness import (
    DEFAULT_LFW,
    DEFAULT_NPZ,
    Backends,
    bulk_import,
    fmt_p,
    http_server,
    load_warning,
    percentiles,
)

from facegate.security import SYSTEM

GALLERY = "bench"
K = 20  # what identify asks the index for (top_k 5 x 4)


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


# -- data -------------------------------------------------------------------------------------
@dataclass
class LFW:
    paths: list[Path]
    identities: np.ndarray
    vectors: np.ndarray
    by_person: dict[str, list[int]]  # person -> rows whose face was found normally, path order
    multi: list[str]  # people with >= 2 such photos, in a fixed shuffled order
    strangers: list[str]  # never enrolled, never mixed into distractors
    pool: np.ndarray  # rows the distractors are mixed from
    model_id: str


def load_lfw(npz: Path, lfw: Path, strangers: int, seed: int) -> LFW:
    from facegate.evaluation.datasets import EmbeddedSet

    if not npz.exists():
        raise SystemExit(f"{npz} is missing: run bench/calibrate_defaults.py (it writes the LFW embeddings)")
    data = EmbeddedSet.load(npz)
    paths = [lfw / Path(p).parent.name / Path(p).name for p in data.paths]
    order = sorted(range(len(paths)), key=lambda i: str(paths[i]))
    by_person: dict[str, list[int]] = collections.defaultdict(list)
    for i in order:
        if data.fallbacks[i] == "":
            by_person[str(data.identities[i])].append(i)
    rng = np.random.default_rng(seed)
    people = sorted(by_person)
    multi = [people[i] for i in rng.permutation(len(people)) if len(by_person[people[i]]) >= 2]
    singles = [p for p in people if len(by_person[p]) == 1]
    chosen = set(rng.choice(singles, size=min(strangers, len(singles) // 2), replace=False).tolist())
    pool = np.array([by_person[p][0] for p in singles if p not in chosen])
    return LFW(paths, data.identities, data.vectors.astype(np.float32), dict(by_person), multi, sorted(chosen), pool,
               data.model_id)


def distractors(lfw: LFW, n: int, seed: int, kind: str = "gaussian", noise: float = 0.75) -> np.ndarray:
    """``n`` synthetic distractor templates (see the module docstring for the two kinds)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, lfw.vectors.shape[1]), np.float32)
    pool = lfw.vectors[lfw.pool].astype(np.float64)
    if kind == "gaussian":
        mean = pool.mean(axis=0)
        cov = np.cov(pool, rowvar=False) + 1e-6 * np.eye(pool.shape[1])
        root = np.linalg.cholesky(cov)
    for start in range(0, n, 20_000):
        m = min(20_000, n - start)
        if kind == "gaussian":
            z = rng.standard_normal((m, pool.shape[1]))
            out[start : start + m] = normalise((mean + z @ root.T).astype(np.float32))
            continue
        i = rng.integers(0, len(lfw.pool), m)
        j = rng.integers(0, len(lfw.pool) - 1, m)
        j = j + (j >= i)
        a = rng.uniform(0.25, 0.75, (m, 1)).astype(np.float32)
        base = a * lfw.vectors[lfw.pool[i]] + (1 - a) * lfw.vectors[lfw.pool[j]]
        u = normalise(rng.standard_normal(base.shape, dtype=np.float32))
        out[start : start + m] = normalise(base + noise * np.linalg.norm(base, axis=1, keepdims=True) * u)
    return out


@dataclass
class Plan:
    rows: list  # (external_id, display_name, vector)
    real_people: list[str]
    distractor_vectors: np.ndarray
    probes: list[tuple[str, int]]  # (external_id, lfw row of a photo not enrolled)
    recall_queries: list[tuple[str, int]]  # ("enrolled"|"stranger", lfw row)


def plan_gallery(lfw: LFW, size: int, requests: int, recall_queries: int, seed: int, kind: str = "gaussian") -> Plan:
    n_real = min(len(lfw.multi), size // 2)
    if n_real < requests:
        raise SystemExit(f"a gallery of {size} holds {n_real} real people, fewer than --requests {requests}")
    real = lfw.multi[:n_real]
    rows = [(f"lfw:{p}", p.replace("_", " "), lfw.vectors[lfw.by_person[p][0]]) for p in real]
    extra = distractors(lfw, size - n_real, seed=seed + size, kind=kind)
    rows += [(f"synth:{k:06d}", "", v) for k, v in enumerate(extra)]
    probes = [(f"lfw:{p}", lfw.by_person[p][1]) for p in real[:requests]]
    rng = np.random.default_rng(seed + 1)
    others = [r for p in real for r in lfw.by_person[p][1:]]
    n_strangers = min(len(lfw.strangers), recall_queries // 5)
    n_enrolled = min(len(others), recall_queries - n_strangers)
    queries = [("enrolled", int(r)) for r in sorted(rng.choice(others, n_enrolled, replace=False))]
    queries += [("stranger", lfw.by_person[p][0]) for p in lfw.strangers[:n_strangers]]
    return Plan(rows, real, extra, probes, queries)


def realism(lfw: LFW, plan: Plan) -> dict:
    """Scores of the probes against real impostors and against distractors: they should agree."""
    probes = lfw.vectors[[r for _, r in plan.probes]]
    own = {f"lfw:{p}": i for i, p in enumerate(plan.real_people)}
    real = lfw.vectors[[lfw.by_person[p][0] for p in plan.real_people]]
    s = probes @ real.T
    mask = np.ones_like(s, bool)
    mask[np.arange(len(probes)), [own[e] for e, _ in plan.probes]] = False
    impostor = s[mask]
    d = (probes @ plan.distractor_vectors[:20_000].T).ravel() if len(plan.distractor_vectors) else np.zeros(1)

    def stats(a):
        return {"mean": float(a.mean()), "std": float(a.std()), "p99.9": float(np.percentile(a, 99.9)), "n": int(a.size)}

    k = min(3000, len(plan.distractor_vectors))
    dd = plan.distractor_vectors[:k] @ plan.distractor_vectors[:k].T
    rr = real[:k] @ real[:k].T
    return {"probe_vs_real_impostor": stats(impostor), "probe_vs_distractor": stats(d),
            "distractor_vs_distractor": stats(dd[np.triu_indices(k, 1)]) if k > 1 else None,
            "real_vs_real_other_people": stats(rr[np.triu_indices(len(rr), 1)])}


# -- measurements -----------------------------------------------------------------------------
def timed_search(service, gallery_id: int, model_id: str, queries: np.ndarray, exact: bool | None) -> list[float]:
    out = []
    for q in queries:
        started = time.perf_counter()
        with service.ctx.sessions() as session:
            service.ctx.search.search(session, gallery_id, model_id, q[None], k=K, exact=exact)
        out.append((time.perf_counter() - started) * 1000)
    return out


def recall(service, gallery_id: int, model_id: str, lfw: LFW, plan: Plan, sweep: list[int]) -> dict:
    import facegate.storage.vector_index as vi
    from facegate.calibration import default_calibration
    from facegate.gallery.context import template_count
    from facegate.gallery.schemas import GallerySettings

    kinds = np.array([k for k, _ in plan.recall_queries])
    with service.ctx.sessions() as session:
        templates = template_count(session, gallery_id)
    threshold, _ = default_calibration(model_id).identify_threshold(GallerySettings().identify_fpir, templates)
    queries = lfw.vectors[[r for _, r in plan.recall_queries]]
    with service.ctx.sessions() as session:
        started = time.perf_counter()
        exact = service.ctx.search.search(session, gallery_id, model_id, queries, k=K, exact=True)
        exact_ms = (time.perf_counter() - started) * 1000 / len(queries)
        cache = service.ctx.search._caches[gallery_id]
        exact_one = []
        for q in queries[:100]:
            started = time.perf_counter()
            if cache.ann is not None:  # the index's own exact mode: every row rescored
                service.ctx.search._ann(cache, q[None], K, exact=True)
            else:
                service.ctx.search._exact(cache, q[None], K)
            exact_one.append((time.perf_counter() - started) * 1000)
    sqlite = service.ctx.db.dialect.name != "postgresql"
    from facegate.storage.ann_index import DEFAULT_RERANK

    # In process (SQLite here): the number of code-scan candidates rescored exactly.
    default_ef = DEFAULT_RERANK if sqlite else vi.PGVECTOR_EF_SEARCH
    results = []
    for ef in [default_ef] + [e for e in sweep if e != default_ef]:
        if sqlite:
            service.ctx.search._caches[gallery_id].ann.rerank = ef
        else:
            vi.PGVECTOR_EF_SEARCH = ef
        try:
            # The index alone (no version read): the code scan through the search object's own
            # helper, pgvector through its SQL, one query at a time.
            per_query = []
            ann = []
            with service.ctx.sessions() as session:
                service.ctx.search.search(session, gallery_id, model_id, queries[:1], k=K, exact=False)  # fresh cache
                cache = service.ctx.search._caches.get(gallery_id)
                for q in queries:
                    started = time.perf_counter()
                    if sqlite:
                        ann.append(service.ctx.search._ann(cache, q[None], K)[0])
                    else:
                        ann.append(service.ctx.search._pgvector(session, gallery_id, model_id, q, K))
                    per_query.append((time.perf_counter() - started) * 1000)
                    if not sqlite:
                        session.commit()  # SET LOCAL lasts one transaction, as in a request
        finally:
            if sqlite:
                service.ctx.search._caches[gallery_id].ann.rerank = DEFAULT_RERANK
            else:
                vi.PGVECTOR_EF_SEARCH = default_ef
        hit = np.array(
            [bool(a) and (a[0].template_id == e[0].template_id or abs(a[0].score - e[0].score) < 1e-6)
             for a, e in zip(ann, exact)]
        )
        subject_hit = np.array([bool(a) and a[0].subject_id == e[0].subject_id for a, e in zip(ann, exact)])

        def decision(hits):  # the subject identify would return at the default threshold, or None
            return hits[0].subject_id if hits and hits[0].score >= threshold else None

        same_decision = np.array([decision(a) == decision(e) for a, e in zip(ann, exact)])
        results.append({
            "ef": ef,
            "default": ef == default_ef,
            "recall_at_1": float(hit.mean()),
            "recall_at_1_enrolled": float(hit[kinds == "enrolled"].mean()),
            "recall_at_1_strangers": float(hit[kinds == "stranger"].mean()) if (kinds == "stranger").any() else None,
            "subject_recall_at_1": float(subject_hit.mean()),
            "same_decision": float(same_decision.mean()),
            "misses": int((~hit).sum()),
            "index_ms_per_query": percentiles(per_query),
        })
    return {
        "queries": len(queries),
        "enrolled_queries": int((kinds == "enrolled").sum()),
        "stranger_queries": int((kinds == "stranger").sum()),
        "exact_ms_per_query_batched": exact_ms,
        "exact_index_ms_per_query": percentiles(exact_one),
        "parameter": "code-scan candidates rescored" if sqlite else "pgvector hnsw.ef_search",
        "decision_threshold": threshold,
        "by_ef": results,
    }


def run_one(backends: Backends, backend: str, size: int, lfw: LFW, args) -> dict:
    from facegate.client import FaceGateClient
    from facegate.gallery.service import PhotoInput
    from facegate.storage.gallery_changes import gallery_state

    plan = plan_gallery(lfw, size, args.requests, args.recall_queries, args.seed, args.distractors)
    result: dict = {"backend": backend, "size": size, "real_templates": len(plan.real_people),
                    "distractors": len(plan.distractor_vectors), "distractor_kind": args.distractors}
    print(f"\n== {backend}, {size:,} templates ({len(plan.real_people):,} real LFW people, "
          f"{len(plan.distractor_vectors):,} {args.distractors} distractors) ==", flush=True)
    result["realism"] = realism(lfw, plan)
    service = backends.service(backend, str(size))
    service.create_gallery(GALLERY, principal=SYSTEM)
    secret = service.create_api_key("bench", ["admin"], principal=SYSTEM).secret
    result.update(bulk_import(service, GALLERY, plan.rows))
    print(f"  imported in {result['import_s']:.1f} s"
          + (f", pgvector HNSW index built in {result['pg_index_build_s']:.1f} s" if "pg_index_build_s" in result else ""),
          flush=True)
    gallery = service.get_gallery(GALLERY, principal=SYSTEM)
    gallery_id, model_id = gallery.id, gallery.model_id
    ann = size >= service.settings.ann_min_templates
    result["path"] = "ann" if ann else "exact"

    probe_vectors = lfw.vectors[[r for _, r in plan.probes]]
    started = time.perf_counter()
    timed_search(service, gallery_id, model_id, probe_vectors[:1], exact=None)
    result["first_search_s"] = time.perf_counter() - started  # loads the cache; builds usearch
    print(f"  first search (cache load{', usearch build' if ann and backend == 'sqlite' else ''}): "
          f"{result['first_search_s']:.1f} s", flush=True)
    if ann:
        started = time.perf_counter()
        timed_search(service, gallery_id, model_id, probe_vectors[:1], exact=True)
        result["exact_cache_load_s"] = time.perf_counter() - started

    # -- search only, at the service level --------------------------------------------------
    timed_search(service, gallery_id, model_id, probe_vectors[:3], exact=None)
    result["search_ms"] = percentiles(timed_search(service, gallery_id, model_id, probe_vectors, exact=None))
    if ann:
        result["search_exact_ms"] = percentiles(timed_search(service, gallery_id, model_id, probe_vectors, exact=True))
    sig = []
    for _ in range(args.requests):
        started = time.perf_counter()
        with service.ctx.sessions() as session:
            gallery_state(session, gallery_id)  # the version read each search makes
        sig.append((time.perf_counter() - started) * 1000)
    result["version_read_ms"] = percentiles(sig)

    # -- HTTP -------------------------------------------------------------------------------
    photos = [(ext, lfw.paths[row].name, lfw.paths[row].read_bytes()) for ext, row in plan.probes]
    with http_server(service) as url, FaceGateClient(url, api_key=secret) as fg:
        for ext, name, data in photos[: args.warmup]:
            fg.verify(GALLERY, ext, (name, data))
            fg.identify(GALLERY, (name, data))
        verify_ms, identify_ms, matched, identified, templates = [], [], 0, 0, 0
        thresholds = {}
        for ext, name, data in photos:
            started = time.perf_counter()
            v = fg.verify(GALLERY, ext, (name, data))
            verify_ms.append((time.perf_counter() - started) * 1000)
            matched += v.match
            thresholds["verify"] = v.threshold.threshold
        for ext, name, data in photos:
            started = time.perf_counter()
            r = fg.identify(GALLERY, (name, data))
            identify_ms.append((time.perf_counter() - started) * 1000)
            identified += any(f.subject == ext for f in r.faces)
            templates = r.gallery_templates
            thresholds["identify"] = r.threshold.threshold
    result["verify_ms"] = percentiles(verify_ms)
    result["identify_ms"] = percentiles(identify_ms)
    result["verify_matches"] = matched
    result["identify_correct_matches"] = identified
    result["thresholds"] = thresholds
    result["gallery_templates"] = templates

    # -- identify at the service level: the approximate path against exact search -----------
    if ann:
        for label, exact in (("service_identify_ms", None), ("service_identify_exact_ms", True)):
            times = []
            for ext, name, data in photos:
                started = time.perf_counter()
                service.identify(GALLERY, PhotoInput(name, data), exact=exact, principal=SYSTEM)
                times.append((time.perf_counter() - started) * 1000)
            result[label] = percentiles(times)

    if args.recall and ann:
        print("  recall ...", flush=True)
        result["recall"] = recall(service, gallery_id, model_id, lfw, plan, args.sweep_ef)

    # -- the next search after one more template: rebuild or update of the ANN index --------
    if ann:
        service.import_templates(GALLERY, [("late:1", "", lfw.vectors[lfw.by_person[lfw.strangers[-1]][0]])], principal=SYSTEM)
        started = time.perf_counter()
        timed_search(service, gallery_id, model_id, probe_vectors[:1], exact=None)
        result["search_after_import_s"] = time.perf_counter() - started
    print_one(result)
    return result


# -- output -----------------------------------------------------------------------------------
def print_one(r: dict) -> None:
    real, dis = r["realism"]["probe_vs_real_impostor"], r["realism"]["probe_vs_distractor"]
    print(f"  scores of probes vs real impostors: mean {real['mean']:.3f} std {real['std']:.3f} p99.9 {real['p99.9']:.3f}; "
          f"vs distractors: mean {dis['mean']:.3f} std {dis['std']:.3f} p99.9 {dis['p99.9']:.3f}")
    dd, rr = r["realism"]["distractor_vs_distractor"], r["realism"]["real_vs_real_other_people"]
    if dd:
        print(f"  distractors among themselves: mean {dd['mean']:.3f} std {dd['std']:.3f} p99.9 {dd['p99.9']:.3f}; "
              f"real templates of different people: mean {rr['mean']:.3f} std {rr['std']:.3f} p99.9 {rr['p99.9']:.3f}")
    print(f"  path {r['path']}; verify {fmt_p(r['verify_ms'])} ms, identify {fmt_p(r['identify_ms'])} ms (p50 / p95, HTTP); "
          f"search only {fmt_p(r['search_ms'])} ms; gallery-version read {fmt_p(r['version_read_ms'])} ms")
    print(f"  verify matched {r['verify_matches']}/{r['verify_ms']['n']} at threshold {r['thresholds'].get('verify', 0):.3f}; "
          f"identify found the right person {r['identify_correct_matches']}/{r['identify_ms']['n']} "
          f"at threshold {r['thresholds'].get('identify', 0):.3f} ({r['gallery_templates']:,} templates)")
    if "search_exact_ms" in r:
        print(f"  exact search {fmt_p(r['search_exact_ms'])} ms; service-level identify: ANN {fmt_p(r['service_identify_ms'])} ms, "
              f"exact {fmt_p(r['service_identify_exact_ms'])} ms; next search after one more template: "
              f"{r['search_after_import_s']:.2f} s")
    if "recall" in r:
        rc = r["recall"]
        print(f"  recall@1 ({rc['queries']} queries: {rc['enrolled_queries']} enrolled, {rc['stranger_queries']} strangers), "
              f"{rc['parameter']}; exact search alone {fmt_p(rc['exact_index_ms_per_query'])} ms per query:")
        for e in rc["by_ef"]:
            strangers = "-" if e["recall_at_1_strangers"] is None else f"{e['recall_at_1_strangers']:.3f}"
            print(f"    {e['ef']:>4}{' (default)' if e['default'] else '          '}: recall@1 {e['recall_at_1']:.3f} "
                  f"(enrolled {e['recall_at_1_enrolled']:.3f}, strangers {strangers}; {e['misses']} misses; "
                  f"same decision {e['same_decision']:.3f}), index alone {fmt_p(e['index_ms_per_query'])} ms per query")
        print(f"    (same decision: the approximate and the exact top-1 give the same answer at the default "
              f"threshold {rc['decision_threshold']:.3f}: the same subject, or both unknown)")
        if r["backend"] == "postgresql":
            print("    (pgvector HNSW filters gallery_id/model_id after the index scan: with one big gallery in the "
                  "table that costs nothing; beside other galleries a scan may hold fewer than k of this one's "
                  "rows, and FaceGate then asks that query again exactly)")


def print_table(results: list[dict]) -> None:
    print("\nLatency, ms (p50 / p95). verify and identify: over HTTP, one request at a time, each with the photo's "
          "detection and embedding; search: the index alone at the service level.")
    head = f"{'backend':<11}{'templates':>10}  {'path':<6}{'verify':>16}{'identify':>16}{'search':>16}{'exact search':>16}{'recall@1':>10}"
    print(head)
    print("-" * len(head))
    for r in results:
        rec = "-"
        if "recall" in r:
            rec = f"{next(e for e in r['recall']['by_ef'] if e['default'])['recall_at_1']:.3f}"
        print(f"{r['backend']:<11}{r['size']:>10,}  {r['path']:<6}{fmt_p(r['verify_ms']):>16}{fmt_p(r['identify_ms']):>16}"
              f"{fmt_p(r['search_ms']):>16}{fmt_p(r.get('search_exact_ms')):>16}{rec:>10}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,100000", help="gallery sizes, comma-separated (default: %(default)s)")
    ap.add_argument("--backends", default="sqlite,postgresql", help="sqlite, postgresql (default: %(default)s)")
    ap.add_argument("--requests", type=int, default=50, help="timed requests of each kind (default: %(default)s)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed requests of each kind first (default: %(default)s)")
    ap.add_argument("--recall", action="store_true", help="measure ANN recall@1 against exact search at ANN sizes")
    ap.add_argument("--recall-queries", type=int, default=500, help="recall queries, a fifth strangers (default: %(default)s)")
    ap.add_argument("--sweep-ef", default="100,400", help="other search candidate-list sizes to measure recall at")
    ap.add_argument("--strangers", type=int, default=200, help="LFW people kept out of every gallery (default: %(default)s)")
    ap.add_argument("--npz", type=Path, default=DEFAULT_NPZ, help="LFW embeddings (default: %(default)s)")
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW photos (default: %(default)s)")
    ap.add_argument("--workdir", type=Path, help="keep the databases here (default: a temporary folder, removed)")
    ap.add_argument("--distractors", default="gaussian", choices=["gaussian", "mix"],
                    help="how distractor templates are made (default: %(default)s; see the docstring)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    args = ap.parse_args()
    args.sweep_ef = [int(v) for v in args.sweep_ef.split(",") if v.strip()]
    sizes = [int(s) for s in args.sizes.split(",")]
    backends_wanted = [b.strip() for b in args.backends.split(",")]

    print(f"machine: {load_warning()}")
    lfw = load_lfw(args.npz, args.lfw, args.strangers, args.seed)
    print(f"LFW: {len(lfw.paths):,} photos; {len(lfw.multi):,} people with >= 2 usable photos (enrolled, probes); "
          f"{len(lfw.strangers)} strangers never enrolled; {len(lfw.pool):,} single-photo people mixed into distractors")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facegate-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    backends = Backends(workdir)
    results = []
    try:
        for backend in backends_wanted:
            for size in sizes:
                results.append(run_one(backends, backend, size, lfw, args))
    finally:
        backends.close()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(results)
    print(f"machine after the run: {load_warning()}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                                         "results": results}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
