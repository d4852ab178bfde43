"""Scale and speed, everything in one run: identify search at 10k / 100k / 1M templates on SQLite
and PostgreSQL, verify and identify over HTTP with 1 and 2 workers, profiles of the slow paths,
then the engine and bulk-enrollment benches with their peers.

Usage (needs out/lfw_all_arcface.npz, see bench/README.md, and ../shared/datasets/lfw)::

    make bench-scale                                   # everything (about an hour on 2 cores)
    .venv/bin/python bench/scale.py --sections index --sizes 10000,100000 --backends sqlite
    .venv/bin/python bench/scale.py --sections http --requests 100

Index section, per backend and size: a fresh database, one gallery imported with
``service.import_templates`` (real LFW templates plus Gaussian distractors with real faces'
covariance, as bench/service.py builds it). Figures: the index build (inline, timed), the bytes
it holds and the process's RSS growth, the time a new service takes to load the saved index and
answer, the search time per query at the service level (``ctx.search.search``, one query at a
time, the gallery-version read included), recall@1 against exact float32 search (numpy over the
same vectors) and the share of queries with the exact search's decision (the subject over the
default identify threshold, or unknown), and the next search after one more enrollment. On
PostgreSQL the same in-process index is measured (the default ``search_index="memory"``), and at
the sizes given to ``--pgvector-sizes`` pgvector's HNSW too (its build at 1M takes hours here).

HTTP section: ``facegate serve --workers N`` in a child process on a SQLite gallery of the LFW
people (templates imported from the npz), a bounded asyncio client (``--concurrency`` requests
in flight) sending one 640x480 JPEG (an LFW photo of an enrolled person, scaled into a 640x480
frame) to verify and identify; p50 / p95 / p99 and requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _harness import DEFAULT_LFW, DEFAULT_NPZ, Backends, free_port, load_warning, percentiles  # noqa: E402
from service import load_lfw, plan_gallery  # noqa: E402

from facegate.security import SYSTEM  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
K = 20


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def fmt(p: dict) -> str:
    return f"p50 {p['p50']:.2f} ms, p95 {p['p95']:.2f} ms"


# -- index ------------------------------------------------------------------------------------
def import_rows(service, rows: list, pg_hnsw: bool) -> float:
    """Import in chunks (binary COPY on PostgreSQL). pgvector's HNSW graphs exist only for
    search_index=pgvector (migration 0007): when they are measured they are built after the
    import, as a service on pgvector would at its start, and that build is timed."""
    started = time.perf_counter()
    for start in range(0, len(rows), 20_000):
        service.import_templates("bench", rows[start : start + 20_000], principal=SYSTEM)
    took = time.perf_counter() - started
    if pg_hnsw:
        from facegate.storage.pgvector_indexes import ensure_pgvector_indexes

        started = time.perf_counter()
        with service.ctx.db.begin() as connection:
            connection.exec_driver_sql("SET maintenance_work_mem = '2GB'")
            ensure_pgvector_indexes(connection)
            connection.exec_driver_sql("ANALYZE face_templates")
        print(f"    pgvector HNSW build: {time.perf_counter() - started:.1f} s", flush=True)
    return took


def measure_index(backends: Backends, backend: str, size: int, lfw, args) -> dict:
    from facegate.calibration import default_calibration
    from facegate.gallery.schemas import GallerySettings

    print(f"\n== {backend}, {size:,} templates", flush=True)
    plan = plan_gallery(lfw, size, requests=1, recall_queries=args.queries, seed=7)
    matrix = np.ascontiguousarray(np.stack([v for _, _, v in plan.rows]).astype(np.float32))
    pg_hnsw = backend == "postgresql" and size in args.pgvector_sizes
    service = backends.service(backend, f"scale{size}", ann_min_templates=min(size, 10_000))
    service.create_gallery("bench", principal=SYSTEM)
    import_s = import_rows(service, plan.rows, pg_hnsw)
    gallery_id = 1
    queries = np.ascontiguousarray(lfw.vectors[[r for _, r in plan.recall_queries]])
    kinds = np.array([k for k, _ in plan.recall_queries])
    threshold, _ = default_calibration(lfw.model_id).identify_threshold(GallerySettings().identify_fpir, size)
    out: dict = {"backend": backend, "size": size, "import_s": import_s, "threshold": threshold}

    before = rss_mib()
    started = time.perf_counter()
    with service.ctx.sessions() as session:
        service.ctx.search.search(session, gallery_id, lfw.model_id, queries[:1], k=K)
    out["first_search_s"] = time.perf_counter() - started  # read the gallery back + build the index
    cache = service.ctx.search._caches[gallery_id]
    out["index_mib"] = cache.ann.nbytes / 2**20 if cache.ann is not None else None
    out["rss_growth_mib"] = rss_mib() - before
    times, top_scores, top_subjects = [], [], []
    with service.ctx.sessions() as session:
        for q in queries:
            t = time.perf_counter()
            hits = service.ctx.search.search(session, gallery_id, lfw.model_id, q[None], k=K)[0]
            times.append((time.perf_counter() - t) * 1000)
            top_scores.append(hits[0].score)
            top_subjects.append(hits[0].subject_id)
    out["search_ms"] = percentiles(times)
    exact = queries @ matrix.T
    exact_best = exact.max(axis=1)
    exact_row = exact.argmax(axis=1)
    del exact
    top = np.array(top_scores)
    hit = np.abs(top - exact_best) < 1e-5
    ext_of_subject = _subject_externals(service, gallery_id)
    exact_ext = np.array([plan.rows[r][0] for r in exact_row])
    got_ext = np.array([ext_of_subject.get(s, "?") for s in top_subjects])
    same = np.where(top >= threshold, got_ext, "unknown") == np.where(exact_best >= threshold, exact_ext, "unknown")
    out.update(recall_at_1=float(hit.mean()), recall_enrolled=float(hit[kinds == "enrolled"].mean()),
               recall_strangers=float(hit[kinds == "stranger"].mean()), same_decision=float(same.mean()),
               queries=len(queries))
    # One more enrollment, then the next search (caught up from the change log).
    service.import_templates("bench", [("late-comer", "", queries[-1])], principal=SYSTEM)
    with service.ctx.sessions() as session:
        t = time.perf_counter()
        service.ctx.search.search(session, gallery_id, lfw.model_id, queries[:1], k=K)
        out["next_search_after_enroll_ms"] = (time.perf_counter() - t) * 1000
    if pg_hnsw:
        out["pgvector"] = measure_pgvector(service, gallery_id, lfw.model_id, queries, exact_best)
    # A fresh service on the same database and data folder: load the saved index and answer.
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    fresh = GalleryService(Settings(data_dir=service.settings.data_dir, database_url=service.settings.database_url,
                                    ann_min_templates=min(size, 10_000), ann_build_in_background=False))
    with fresh.ctx.sessions() as session:
        t = time.perf_counter()
        fresh.ctx.search.search(session, gallery_id, lfw.model_id, queries[:1], k=K)
        out["load_s"] = time.perf_counter() - t
    if args.profile and size == max(args.sizes):
        with service.ctx.sessions() as session:
            out["profile"] = profile(lambda: [service.ctx.search.search(session, gallery_id, lfw.model_id, q[None], k=K)
                                              for q in queries[:200]])
    fresh.close()
    service.close()
    print_index(out)
    return out


def _subject_externals(service, gallery_id: int) -> dict[int, str]:
    from facegate.storage.models import Subject

    with service.ctx.sessions() as session:
        return dict(session.query(Subject.id, Subject.external_id).filter(Subject.gallery_id == gallery_id).all())


def measure_pgvector(service, gallery_id: int, model_id: str, queries: np.ndarray, exact_best: np.ndarray) -> dict:
    times, best = [], []
    with service.ctx.sessions() as session:
        for q in queries:
            t = time.perf_counter()
            hits = service.ctx.search._pgvector(session, gallery_id, model_id, q, K)
            times.append((time.perf_counter() - t) * 1000)
            best.append(hits[0].score if hits else -1.0)
            session.commit()
    hit = np.abs(np.array(best) - exact_best) < 1e-4
    return {"search_ms": percentiles(times), "recall_at_1": float(hit.mean())}


def print_index(r: dict) -> None:
    print(f"  import {r['import_s']:.1f} s; first search (read back + build) {r['first_search_s']:.1f} s; "
          f"index {r['index_mib'] or 0:.0f} MiB (RSS +{r['rss_growth_mib']:.0f} MiB); load saved + answer "
          f"{r['load_s']:.2f} s")
    print(f"  search per query: {fmt(r['search_ms'])}; recall@1 {r['recall_at_1']:.4f} (enrolled "
          f"{r['recall_enrolled']:.4f}, strangers {r['recall_strangers']:.4f}); same decision {r['same_decision']:.4f} "
          f"over {r['queries']} queries; next search after one enrollment {r['next_search_after_enroll_ms']:.1f} ms")
    if "pgvector" in r:
        p = r["pgvector"]
        print(f"  pgvector HNSW (ef_search 600): {fmt(p['search_ms'])}; recall@1 {p['recall_at_1']:.4f}")
    if "profile" in r:
        print("  profile of 200 searches (cumulative):\n" + r["profile"])


def profile(fn) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stream = io.StringIO()
    pstats.Stats(prof, stream=stream).sort_stats("tottime").print_stats(8)
    lines = [ln for ln in stream.getvalue().splitlines() if ln.strip() and not ln.startswith("   Ordered")]
    return "\n".join("    " + ln for ln in lines[-10:])


# -- HTTP ---------------------------------------------------------------------------------------
def frame_640x480(path: Path) -> bytes:
    from PIL import Image

    photo = Image.open(path).convert("RGB")
    canvas = Image.new("RGB", (640, 480), (118, 118, 118))
    scaled = photo.resize((430, 430))
    canvas.paste(scaled, ((640 - 430) // 2, (480 - 430) // 2))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue()


def measure_http(lfw, args, workdir: Path) -> list[dict]:
    import httpx

    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    data_dir = workdir / "http"
    people = lfw.multi[:300]
    service = GalleryService(Settings(data_dir=data_dir), migrate=True)
    service.create_gallery("bench", principal=SYSTEM)
    service.import_templates("bench", [(f"lfw:{p}", p, lfw.vectors[lfw.by_person[p][0]]) for p in people],
                             principal=SYSTEM)
    key = service.create_api_key("bench", ["admin"], principal=SYSTEM).secret
    service.close()
    probes = [(f"lfw:{p}", frame_640x480(lfw.paths[lfw.by_person[p][1]])) for p in people[:20]]
    results = []
    for workers in args.workers:
        port = free_port()
        env = dict(os.environ, FACEGATE_DATA_DIR=str(data_dir), FACEGATE_RATE_LIMIT_ENABLED="false",
                   FACEGATE_METRICS_ENABLED="false")
        log = open(workdir / f"serve-{workers}.log", "wb")  # noqa: SIM115 - closed with the server
        proc = subprocess.Popen([sys.executable, "-m", "facegate.cli", "serve", "--port", str(port), "--workers",
                                 str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}/api/v1"
        try:
            deadline = time.monotonic() + 240
            while True:
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the server did not start:\n" + (workdir / f"serve-{workers}.log").read_text()[-3000:])
            for kind in ("verify", "identify"):
                stats = asyncio.run(_load(base, key, kind, probes, args.requests, args.concurrency))
                stats.update(workers=workers, kind=kind)
                results.append(stats)
                print(f"  {workers} worker(s), {kind}: p50 {stats['p50']:.1f} ms, p95 {stats['p95']:.1f} ms, "
                      f"p99 {stats['p99']:.1f} ms, {stats['rps']:.1f} req/s, errors {stats['errors']} "
                      f"({stats['n']} requests, {args.concurrency} in flight)", flush=True)
            if workers == 1:
                stats = asyncio.run(_load(base, key, "verify", probes, max(20, args.requests // 5), 1))
                print(f"  1 worker, verify one at a time: p50 {stats['p50']:.1f} ms, p95 {stats['p95']:.1f} ms",
                      flush=True)
                stats.update(workers=1, kind="verify-serial")
                results.append(stats)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            log.close()
    return results


async def _load(base: str, key: str, kind: str, probes: list, n: int, concurrency: int) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}, timeout=120) as client:
        async def one(i: int) -> None:
            nonlocal errors
            subject, jpeg = probes[i % len(probes)]
            url = f"/galleries/bench/subjects/{subject}/verify" if kind == "verify" else "/galleries/bench/identify"
            t = time.perf_counter()
            response = await client.post(url, files={"file": ("p.jpg", jpeg, "image/jpeg")})
            latencies.append((time.perf_counter() - t) * 1000)
            if response.status_code != 200:
                errors += 1

        for i in range(3):  # warm-up
            await one(i)
        latencies.clear()
        semaphore = asyncio.Semaphore(concurrency)

        async def bounded(i: int) -> None:
            async with semaphore:
                await one(i)

        started = time.perf_counter()
        await asyncio.gather(*(bounded(i) for i in range(n)))
        wall = time.perf_counter() - started
    a = np.array(latencies)
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "rps": n / wall, "errors": errors}


def models_alone() -> str:
    """The two networks of a verify alone, through FaceGate's own sessions (same threads and
    options): SCRFD at 640x480, ArcFace on one 112x112 face. Their sum bounds a verify from below."""
    from facegate.config import get_settings
    from facegate.models.registry import onnx_session

    lines = []
    for key, shape in (("scrfd_500m", (1, 3, 480, 640)), ("arcface_mbf", (1, 3, 112, 112))):
        settings = get_settings()
        session = onnx_session(key, settings.ort_intra_threads, settings.ort_inter_threads)
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).random(shape, dtype=np.float32)}
        for _ in range(5):
            session.run(None, feed)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - t) * 1000)
        lines.append(f"  {key} {shape[2]}x{shape[3]} alone: {fmt(percentiles(times))}")
    return "\n".join(lines)


def profile_verify(lfw) -> str:
    """Where a verify spends its time in process (decode, detection, embedding, decision)."""
    from facegate.config import Settings
    from facegate.gallery.inputs import PhotoInput
    from facegate.gallery.service import GalleryService

    with tempfile.TemporaryDirectory() as tmp:
        service = GalleryService(Settings(data_dir=Path(tmp)), migrate=True)
        service.create_gallery("p", principal=SYSTEM)
        person = lfw.multi[0]
        service.import_templates("p", [("a", "", lfw.vectors[lfw.by_person[person][0]])], principal=SYSTEM)
        jpeg = frame_640x480(lfw.paths[lfw.by_person[person][1]])
        service.verify("p", "a", PhotoInput("w.jpg", jpeg), principal=SYSTEM)
        times = []

        def run() -> None:
            for _ in range(30):
                t = time.perf_counter()
                service.verify("p", "a", PhotoInput("w.jpg", jpeg), principal=SYSTEM)
                times.append((time.perf_counter() - t) * 1000)

        text = profile(run)
        service.close()
    return f"  in-process verify of the 640x480 JPEG: {fmt(percentiles(times))}\n{text}"


# -- the other benches ------------------------------------------------------------------------------
def run_peer_benches(args) -> None:
    bench_python = REPO / ".venv-bench" / "bin" / "python"
    if not bench_python.exists():
        print("\n(engine and bulk-enrollment peers skipped: .venv-bench is missing; `make bench` builds it)")
        return
    for script, extra in (("engine.py", ["--n", str(args.engine_n)]), ("bulk_enroll.py", ["--n", str(args.bulk_n)])):
        print(f"\n######## bench/{script}", flush=True)
        subprocess.run([str(bench_python), str(REPO / "bench" / script), *extra], check=False, cwd=REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="index,http,profile,peers")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pgvector-sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--engine-n", type=int, default=300)
    parser.add_argument("--bulk-n", type=int, default=200)
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--npz", type=Path, default=DEFAULT_NPZ)
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.pgvector_sizes = [int(s) for s in args.pgvector_sizes.split(",") if s]
    args.workers = [int(w) for w in args.workers.split(",")]
    sections = args.sections.split(",")
    print(load_warning(), flush=True)
    lfw = load_lfw(args.npz, args.lfw, strangers=200, seed=7)
    report: dict = {"load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="fg-scale-") as tmp:
        workdir = Path(tmp)
        if "index" in sections:
            print("\n######## identify search: in-process index (code scan + exact rescoring), SQLite and PostgreSQL")
            backends = Backends(workdir)
            try:
                report["index"] = [measure_index(backends, b, s, lfw, args)
                                   for b in args.backends.split(",") for s in args.sizes]
            finally:
                backends.close()
        if "http" in sections:
            print("\n######## verify and identify over HTTP (facegate serve --workers N, one 640x480 JPEG)")
            report["http"] = measure_http(lfw, args, workdir)
        if "profile" in sections:
            print("\n######## profile: verify in process")
            report["verify_profile"] = profile_verify(lfw)
            print(report["verify_profile"])
            report["models_alone"] = models_alone()
            print(report["models_alone"])
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"{load_warning()}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    if "peers" in sections:
        run_peer_benches(args)


if __name__ == "__main__":
    main()
