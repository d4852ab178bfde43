"""Bulk enrollment throughput and memory: FaceGate in this process and on a local Ray cluster,
against face_recognition (ageitgey) and the insightface package, in one run, on the same LFW
images.

Usage (from the repository root)::

    .venv-bench/bin/python bench/bulk_enroll.py [--n 200] [--ray-workers 2] [--json out/bulk_enroll.json]

Each system runs alone in its own child process, one after the other. FaceGate's children run
in FaceGate's environment (``.venv``, which has Ray), the peers' in ``.venv-bench`` (where
face_recognition and insightface live; never in FaceGate's). What each does per image:

* ``facegate-local`` / ``facegate-ray``: ``bulk_enroll``, the code behind ``facegate enroll bulk``,
  into a fresh SQLite gallery (subject = the LFW folder): read, decode, detect, align, score
  quality, embed, then every enrollment rule and a committed template per accepted photo.
  Local: one engine, ``--threads`` onnxruntime threads. Ray: ``--ray-workers`` actors, one CPU
  and one onnxruntime thread each.
* ``face_recognition``: ``load_image_file``, ``face_locations`` (HOG), ``face_encodings``, at
  its defaults; the encodings are kept in memory.
* ``insightface``: ``cv2.imread`` and ``FaceAnalysis.get`` (detection and recognition only, at
  its default detector sizes) on the very ONNX files FaceGate loads (SCRFD-500MF and
  w600k_mbf from buffalo_s, located and checksum-verified by ``facegate.models.registry``),
  through a folder of links: nothing is downloaded. CPU provider, ``--threads`` threads.

Setup (imports, models, and for Ray the cluster's start) is timed apart from the job; images/s
is images / job seconds; "steady" is (images - 1) / (last result - first result), the rate
once the first result is out (Ray's actors start inside the job). Memory: the largest single
process (``wait4``'s peak RSS of the child and the children it reaped), and the peak of the
child's whole process tree summed, sampled every 0.2 s (Ray's raylet, GCS and actors included;
pages shared by several processes count in each, so the sum over-counts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LFW = ROOT.parent / "shared" / "datasets" / "lfw"
SYSTEMS = ("facegate-local", "facegate-ray", "face_recognition", "insightface")
RESULT_PREFIX = "BULK-RESULT "


def select_lfw(lfw: Path, n: int) -> list[Path]:
    """Every k-th of the sorted ``*.jpg`` paths: the same ``n`` images each run."""
    paths = sorted(lfw.rglob("*.jpg"))
    if not paths:
        raise SystemExit(f"no *.jpg under {lfw}: pass --lfw PATH")
    return paths[:: max(1, len(paths) // n)][:n]


def default_python(venv: str) -> str:
    candidate = ROOT / venv / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


# -- the children ------------------------------------------------------------------------------
class Clock:
    """When each result came out, for the steady rate."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.stamps: list[float] = []

    def begin(self) -> float:
        self.start = time.perf_counter()
        return self.start

    def tick(self) -> None:
        self.stamps.append(time.perf_counter())

    def steady(self) -> float:
        span = self.stamps[-1] - self.stamps[0] if len(self.stamps) > 1 else 0.0
        return (len(self.stamps) - 1) / span if span > 0 else float("nan")


def run_facegate(args, paths: list[Path], clock: Clock) -> dict:
    t0 = time.perf_counter()
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService
    from facegate.parallel import Compute, ray_cluster
    from facegate.security import SYSTEM
    from facegate.workflows.bulk_enroll import SourcePhoto, bulk_enroll

    engine = args.worker.split("-", 1)[1]
    settings = Settings(data_dir=Path(args.workdir) / engine, ort_intra_threads=args.threads, ort_inter_threads=1)
    service = GalleryService(settings, migrate=True)
    service.create_gallery("bench", principal=SYSTEM)
    service.ctx.engines.get("arcface", "scrfd")
    photos = [SourcePhoto(p.parent.name, p, f"{p.parent.name}/{p.name}") for p in paths]
    with ray_cluster(args.ray_workers) if engine == "ray" else _nothing():
        setup = time.perf_counter() - t0
        t1 = clock.begin()
        report = bulk_enroll(service, "bench", photos, Compute(engine, args.ray_workers), principal=SYSTEM,
                             on_progress=clock.tick)
        job = time.perf_counter() - t1
    codes: dict[str, int] = defaultdict(int)
    for item in report.items:
        codes[item.code or item.status] += 1
    return {"setup_s": setup, "job_s": job, "outcome": f"{report.accepted} stored, {report.rejected} rejected",
            "codes": dict(codes)}


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def run_face_recognition(args, paths: list[Path], clock: Clock) -> dict:
    t0 = time.perf_counter()
    try:
        import face_recognition
    except BaseException as exc:  # noqa: BLE001 - it calls quit() when its models are missing
        return {"skipped": f"cannot import face_recognition ({type(exc).__name__}: {exc})"}
    setup = time.perf_counter() - t0
    kept, no_face = [], 0
    t1 = clock.begin()
    for path in paths:
        image = face_recognition.load_image_file(str(path))
        encodings = face_recognition.face_encodings(image, face_recognition.face_locations(image))
        kept.append(encodings)
        no_face += not encodings
        clock.tick()
    job = time.perf_counter() - t1
    faces = sum(len(k) for k in kept)
    return {"setup_s": setup, "job_s": job, "outcome": f"{faces} faces embedded, {no_face} images without"}


def run_insightface(args, paths: list[Path], clock: Clock) -> dict:
    t0 = time.perf_counter()
    try:
        import cv2
        import onnxruntime as ort
        from insightface.app import FaceAnalysis
    except ImportError as exc:
        return {"skipped": f"cannot import insightface ({exc}); pip install insightface into .venv-bench"}
    from facegate.models.registry import verified_path

    pack = Path(args.workdir) / "buffalo_s"  # links to FaceGate's own files: FaceAnalysis finds them here
    pack.mkdir(parents=True, exist_ok=True)
    for key in ("scrfd_500m", "arcface_mbf"):
        source = verified_path(key)
        (pack / source.name).symlink_to(source)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
    app = FaceAnalysis(name=str(pack), allowed_modules=["detection", "recognition"],
                       providers=["CPUExecutionProvider"], sess_options=options)
    size = int(args.insightface_det_size)
    app.prepare(ctx_id=-1, det_size=(size, size) if size else None)  # 0: the package's default sizes
    setup = time.perf_counter() - t0
    kept, no_face = [], 0
    t1 = clock.begin()
    for path in paths:
        faces = app.get(cv2.imread(str(path)))
        kept.append([face.normed_embedding for face in faces])
        no_face += not faces
        clock.tick()
    job = time.perf_counter() - t1
    found = sum(len(k) for k in kept)
    return {"setup_s": setup, "job_s": job,
            "outcome": f"{found} faces embedded, {no_face} images without (det sizes {app.det_size})"}


def run_worker(args) -> dict:
    paths = [Path(p) for p in json.loads(Path(args.paths).read_text())]
    clock = Clock()
    runner = {"face_recognition": run_face_recognition, "insightface": run_insightface}.get(args.worker, run_facegate)
    result = runner(args, paths, clock)
    if "skipped" not in result:
        result["images"] = len(paths)
        result["images_per_s"] = len(paths) / result["job_s"]
        result["steady_images_per_s"] = clock.steady()
        result["first_result_s"] = clock.stamps[0] - clock.start if clock.stamps else None
    return {"system": args.worker, **result}


# -- the parent: stdlib only -------------------------------------------------------------------
def tree_rss_mib(root: int) -> float:
    """Summed VmRSS of ``root`` and every descendant now alive, MiB."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024.0
        except OSError:
            continue
    return total


def run_child(system: str, args, paths_file: Path, workdir: Path) -> dict:
    python = args.facegate_python if system.startswith("facegate") else args.peer_python
    cmd = [python, os.path.abspath(__file__), "--worker", system, "--paths", str(paths_file), "--workdir",
           str(workdir / system), "--threads", str(args.threads), "--ray-workers", str(args.ray_workers),
           "--insightface-det-size", str(args.insightface_det_size)]
    (workdir / system).mkdir(parents=True)
    env = dict(os.environ, FACEGATE_ORT_INTRA_THREADS=str(args.threads), FACEGATE_DATA_DIR=str(workdir / system))
    env.pop("FACEGATE_DATABASE_URL", None)
    errors = (workdir / f"{system}.stderr").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, env=env, text=True, cwd=ROOT)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss_mib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    errors.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = next((json.loads(line[len(RESULT_PREFIX):]) for line in stdout.splitlines()
                   if line.startswith(RESULT_PREFIX)), None)
    if result is None:
        tail = (workdir / f"{system}.stderr").read_text()[-1500:]
        return {"system": system, "failed": f"exited {proc.returncode} without a result:\n{tail}"}
    result["max_rss_one_process_mib"] = usage.ru_maxrss / 1024.0
    result["peak_tree_rss_mib"] = peak[0]
    result["child_wall_s"] = time.perf_counter() - t0
    return result


def fmt(value, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


def print_table(results: list[dict]) -> None:
    base = next((r for r in results if r["system"] == "facegate-local" and "images_per_s" in r), None)
    head = (f"{'system':<17} {'setup s':>8} {'job s':>7} {'img/s':>7} {'steady':>7} {'x local':>8} "
            f"{'RSS MiB 1 proc':>15} {'RSS MiB tree':>13}  outcome")
    print(head)
    print("-" * len(head))
    for r in results:
        if "images_per_s" not in r:
            print(f"{r['system']:<17} {'SKIPPED: ' + r['skipped'] if 'skipped' in r else 'FAILED: ' + r['failed']}")
            continue
        ratio = r["images_per_s"] / base["images_per_s"] if base else float("nan")
        print(f"{r['system']:<17} {fmt(r['setup_s'], '8.1f')} {fmt(r['job_s'], '7.1f')} "
              f"{fmt(r['images_per_s'], '7.2f')} {fmt(r['steady_images_per_s'], '7.2f')} {fmt(ratio, '8.2f')} "
              f"{fmt(r['max_rss_one_process_mib'], '15.0f')} {fmt(r['peak_tree_rss_mib'], '13.0f')}  {r['outcome']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW folder (default: %(default)s)")
    ap.add_argument("--n", type=int, default=200, help="LFW images, every k-th of the sorted paths")
    ap.add_argument("--peers", default=",".join(SYSTEMS), help="comma-separated, from: " + ", ".join(SYSTEMS))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("FACEGATE_ORT_INTRA_THREADS", "2")),
                    help="onnxruntime threads of facegate-local and insightface (default: env or 2)")
    ap.add_argument("--ray-workers", type=int, default=2, help="Ray actors (and CPUs of the local cluster)")
    ap.add_argument("--facegate-python", default=default_python(".venv"), help="interpreter for FaceGate (has Ray)")
    ap.add_argument("--peer-python", default=default_python(".venv-bench"), help="interpreter for the peers")
    ap.add_argument("--insightface-det-size", type=int, default=0,
                    help="insightface's detector input side (0: the package's default, today 128 and 640)")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--paths", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(RESULT_PREFIX + json.dumps(run_worker(args)), flush=True)
        return 0
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if unknown := [p for p in peers if p not in SYSTEMS]:
        ap.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")

    paths = select_lfw(args.lfw, args.n)
    load = os.getloadavg()
    print("FaceGate bulk enrollment benchmark")
    print(f"  machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"  images: {len(paths)} LFW photos of {len({p.parent.name for p in paths})} people under {args.lfw}")
    print(f"  threads: {args.threads} onnxruntime threads (facegate-local, insightface); facegate-ray: "
          f"{args.ray_workers} actors x 1 thread; face_recognition: dlib's defaults")
    print(f"  FaceGate runs in {args.facegate_python}, the peers in {args.peer_python}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="fg-bulk-bench-") as tmp:
        workdir = Path(tmp)
        paths_file = workdir / "paths.json"
        paths_file.write_text(json.dumps([str(p) for p in paths]))
        for system in peers:
            print(f"running {system} ...", flush=True)
            results.append(run_child(system, args, paths_file, workdir))
    after = os.getloadavg()
    print()
    print_table(results)
    print(f"\nload average after: {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}"
          + ("  (WARNING: busy machine, timings inflated)" if max(load[0], after[0]) > 0.75 * (os.cpu_count() or 1) else ""))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"load_before": load, "load_after": after, "images": len(paths),
                                         "threads": args.threads, "ray_workers": args.ray_workers,
                                         "results": results}, indent=2))
        print(f"wrote {args.json}")
    return 0 if all("failed" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
