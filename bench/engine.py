"""Speed and memory: FaceGate's engine against face_recognition (ageitgey), in one run.

Usage (from the repository root)::

    make bench
    .venv-bench/bin/python bench/engine.py [--n 500] [--repeat-big 10] [--json out/bench.json]

Each system runs in its own child process (this script re-invoked with ``--worker SYSTEM``),
one after the other, never side by side, so they neither share the cores nor each other's
memory. A child decodes its images first (untimed for the pipeline, reported apart), makes
one untimed warm-up call per phase, then times each image:

* ``detect``: finding the faces only;
* ``full``: finding every face and computing its embedding (FaceGate: ``engine.analyze``,
  which also aligns and scores quality; face_recognition: ``face_locations`` then
  ``face_encodings`` on those locations, both at their defaults: HOG, upsample 1, 5-point
  'small' landmarks, ``num_jitters=1``).

Peak memory is the child's maximum resident set size as the kernel counts it (``wait4``),
in MiB. The parent itself imports nothing but the standard library, so it stays small.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LFW = ROOT.parent / "shared" / "datasets" / "lfw"
DEFAULT_BIG = ROOT.parent / "shared" / "datasets" / "groups" / "face-api.js" / "bbt1.jpg"
BIG_SIZE = (1280, 720)
SYSTEMS = ("facegate-arcface", "facegate-dlib", "face_recognition")
RESULT_PREFIX = "BENCH-RESULT "
PHASES = (("lfw", "detect"), ("lfw", "full"), ("big", "detect"), ("big", "full"))


# -- shared helpers (stdlib only) ---------------------------------------------------------
def select_lfw(lfw: Path, n: int) -> tuple[list[Path], int, int]:
    """Every k-th of the sorted ``*.jpg`` paths under ``lfw``: the same ``n`` images each run.

    Returns (selected paths, k, how many there were).
    """
    paths = sorted(lfw.rglob("*.jpg"))
    if not paths:
        raise SystemExit(f"no *.jpg under {lfw}: pass --lfw PATH")
    step = max(1, len(paths) // n)
    return paths[::step][:n], step, len(paths)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def rss_mib() -> float:
    """The current resident set size (VmRSS), MiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    kib = resource.getrusage(who).ru_maxrss  # KiB on Linux (bytes on macOS)
    return kib / (1024.0 * 1024.0) if sys.platform == "darwin" else kib / 1024.0


def thread_setting() -> int:
    return int(os.environ.get("FACEGATE_ORT_INTRA_THREADS", "2"))


# -- the worker: one system, in its own process -------------------------------------------
def load_big(path: Path):
    """The big photo as RGB uint8, exactly 1280x720 (resized in memory when it is not)."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        original = im.size
        if im.size != BIG_SIZE:
            im = im.resize(BIG_SIZE, Image.LANCZOS)
        return np.ascontiguousarray(np.asarray(im)), original


def _dist_version(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "?"


def make_system(system: str):
    """(detect, full, decode, version): callables for one image; full returns the face count."""
    if system.startswith("facegate-"):
        from facegate.engine import FaceEngine
        from facegate.imaging import load_image

        model = system.split("-", 1)[1]
        engine = FaceEngine(model=model, detector="scrfd")

        def detect(img):
            return len(engine.detect(img))

        def full(img):
            faces = engine.analyze(img)
            for face in faces:
                assert face.template is not None
            return len(faces)

        where = ", ".join(f"{role} on {'+'.join(p)}" for role, p in engine.providers.items())
        version = f"facegate {_dist_version('facegate')}, onnxruntime {_dist_version('onnxruntime')} ({where})"
        return detect, full, load_image, version

    if system == "face_recognition":
        # face_recognition calls quit() when face_recognition_models is missing: catch that too.
        try:
            import face_recognition
        except BaseException as exc:  # noqa: BLE001
            raise ImportError(f"cannot import face_recognition ({type(exc).__name__}: {exc})") from None

        def detect(img):
            return len(face_recognition.face_locations(img))

        def full(img):
            locations = face_recognition.face_locations(img)
            encodings = face_recognition.face_encodings(img, locations)
            return len(encodings)

        # face_recognition's own __version__ is stale (1.2.3 in the 1.3.0 release): ask pip's metadata.
        version = f"face_recognition {_dist_version('face_recognition')}, dlib {_dist_version('dlib-bin', 'dlib')}"
        return detect, full, face_recognition.load_image_file, version

    raise SystemExit(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}")


def time_phase(fn, images) -> dict:
    fn(images[0])  # warm-up, untimed
    times, faces, missed = [], 0, 0
    cpu0 = time.process_time()
    for img in images:
        t0 = time.perf_counter()
        found = fn(img)
        times.append(time.perf_counter() - t0)
        faces += found
        missed += found == 0
    cpu = time.process_time() - cpu0
    total = sum(times)
    return {
        "images": len(images),
        "median_ms": 1000.0 * percentile(times, 50),
        "p95_ms": 1000.0 * percentile(times, 95),
        "total_s": total,
        "images_per_s": len(images) / total if total > 0 else float("nan"),
        "faces": faces,
        "no_face_images": missed,
        "cpu_per_wall": cpu / total if total > 0 else float("nan"),
    }


def run_worker(args) -> dict:
    system = args.worker
    out: dict = {"system": system, "pid": os.getpid()}
    t0 = time.perf_counter()
    try:
        detect, full, decode, version = make_system(system)
    except ImportError as exc:
        return {"system": system, "skipped": str(exc)}
    out["load_s"] = time.perf_counter() - t0
    out["version"] = version
    out["rss_after_load_mib"] = rss_mib()

    paths, _, _ = select_lfw(Path(args.lfw), args.n)
    t0 = time.perf_counter()
    lfw_images = [decode(str(p)) for p in paths]
    out["decode_ms_per_image"] = 1000.0 * (time.perf_counter() - t0) / len(paths)
    big, _ = load_big(Path(args.big))
    big_images = [big] * args.repeat_big
    out["rss_after_decode_mib"] = rss_mib()

    phases = {}
    for data, phase in PHASES:
        images = lfw_images if data == "lfw" else big_images
        phases[f"{data}_{phase}"] = time_phase(detect if phase == "detect" else full, images)
    out["phases"] = phases
    out["self_maxrss_mib"] = maxrss_mib()
    return out


# -- the parent: run each worker, then tabulate --------------------------------------------
def run_child(system: str, args) -> dict:
    cmd = [
        sys.executable, os.path.abspath(__file__), "--worker", system,
        "--lfw", str(args.lfw), "--n", str(args.n),
        "--big", str(args.big), "--repeat-big", str(args.repeat_big),
    ]  # fmt: skip
    env = dict(os.environ, FACEGATE_ORT_INTRA_THREADS=str(args.threads))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    stdout = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage, peak RSS included
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    result = None
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
    if result is None:
        return {"system": system, "failed": f"worker exited {proc.returncode} without a result"}
    kib = usage.ru_maxrss
    result["peak_rss_mib"] = kib / (1024.0 * 1024.0) if sys.platform == "darwin" else kib / 1024.0
    result["worker_wall_s"] = wall
    return result


def fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def print_table(results: list[dict]) -> None:
    ok = [r for r in results if "phases" in r]
    head = f"{'system':<18} {'phase':<14} {'median ms':>10} {'p95 ms':>9} {'img/s':>8} {'faces':>6} {'no face':>8} {'cpu/wall':>9}"
    print(head)
    print("-" * len(head))
    labels = {"lfw_detect": "LFW detect", "lfw_full": "LFW full", "big_detect": "1280 detect", "big_full": "1280 full"}
    for r in ok:
        for key, label in labels.items():
            p = r["phases"][key]
            print(
                f"{r['system']:<18} {label:<14} {fmt(p['median_ms'], '10.1f')} {fmt(p['p95_ms'], '9.1f')} "
                f"{fmt(p['images_per_s'], '8.2f')} {p['faces']:>6} {p['no_face_images']:>8} "
                f"{fmt(p['cpu_per_wall'], '9.2f')}"
            )
    print()
    head = f"{'system':<18} {'peak RSS MiB':>12} {'RSS loaded':>11} {'RSS +images':>12} {'load s':>7} {'decode ms/img':>14}"
    print(head)
    print("-" * len(head))
    for r in ok:
        print(
            f"{r['system']:<18} {fmt(r['peak_rss_mib'], '12.0f')} {fmt(r['rss_after_load_mib'], '11.0f')} "
            f"{fmt(r['rss_after_decode_mib'], '12.0f')} {fmt(r['load_s'], '7.2f')} "
            f"{fmt(r['decode_ms_per_image'], '14.2f')}"
        )
    for r in results:
        if "skipped" in r:
            print(f"{r['system']}: SKIPPED: {r['skipped']}")
        if "failed" in r:
            print(f"{r['system']}: FAILED: {r['failed']}")


def ratios(results: list[dict]) -> dict:
    by = {r["system"]: r for r in results if "phases" in r}
    peer = by.get("face_recognition")
    out = {}
    if peer is None:
        return out
    for name, r in by.items():
        if not name.startswith("facegate-"):
            continue
        out[name] = {
            "lfw_full_throughput": r["phases"]["lfw_full"]["images_per_s"] / peer["phases"]["lfw_full"]["images_per_s"],
            "big_full_throughput": r["phases"]["big_full"]["images_per_s"] / peer["phases"]["big_full"]["images_per_s"],
            "lfw_detect_throughput": r["phases"]["lfw_detect"]["images_per_s"]
            / peer["phases"]["lfw_detect"]["images_per_s"],
            "peak_memory": r["peak_rss_mib"] / peer["peak_rss_mib"],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW folder (default: %(default)s)")
    ap.add_argument("--n", type=int, default=500, help="LFW images, every k-th of the sorted paths")
    ap.add_argument("--big", type=Path, default=DEFAULT_BIG,
                    help="a large photo; resized in memory to exactly 1280x720 if it is not (default: %(default)s)")  # fmt: skip
    ap.add_argument("--repeat-big", type=int, default=10, help="timed runs on the 1280x720 photo")
    ap.add_argument("--peers", default=",".join(SYSTEMS), help="comma-separated, from: " + ", ".join(SYSTEMS))
    ap.add_argument("--threads", type=int, default=thread_setting(),
                    help="FACEGATE_ORT_INTRA_THREADS for the FaceGate workers (default: env or 2)")  # fmt: skip
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.n < 1 or args.repeat_big < 1:
        ap.error("--n and --repeat-big must be at least 1")

    if args.worker:
        result = run_worker(args)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in SYSTEMS]
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")

    selected, step, total = select_lfw(args.lfw, args.n)
    big_w_h = None
    try:  # the photo's size from its header (Pillow alone, no numpy: the parent stays small)
        from PIL import Image

        with Image.open(args.big) as im:
            big_w_h = im.size
    except Exception:  # noqa: BLE001
        pass
    cores = os.cpu_count()
    load = os.getloadavg()
    print("FaceGate engine benchmark")
    print(f"  machine: {platform.machine()}, {cores} cores ({len(os.sched_getaffinity(0))} usable), "
          f"Python {platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    print(f"  threads: FACEGATE_ORT_INTRA_THREADS={args.threads} (FaceGate's onnxruntime); "
          "face_recognition/dlib at its own defaults")  # fmt: skip
    print(f"  LFW: {len(selected)} images, every {step}-th of the {total} sorted *.jpg under {args.lfw}")
    if big_w_h == BIG_SIZE:
        print(f"  big photo: {args.big} (already 1280x720), {args.repeat_big} timed runs")
    else:
        size = f"{big_w_h[0]}x{big_w_h[1]}" if big_w_h else "?"
        print(f"  big photo: {args.big} ({size}, resized in memory to 1280x720), {args.repeat_big} timed runs")
    if cores and load[0] > 0.5 * cores:
        print(f"  WARNING: the machine is busy (load {load[0]:.1f} on {cores} cores): timings will be slow and noisy")
    print("  each system runs alone in its own process, one after the other; warm-up call untimed")
    print(flush=True)

    results = []
    for system in peers:
        print(f"running {system} ...", flush=True)
        r = run_child(system, args)
        if "skipped" in r:
            print(f"  skipped: {r['skipped']} (run with .venv-bench/bin/python, see bench/README.md)", flush=True)
        elif "failed" in r:
            print(f"  FAILED: {r['failed']}", flush=True)
        else:
            print(f"  {r['version']}; done in {r['worker_wall_s']:.1f} s", flush=True)
        results.append(r)
    print()
    print_table(results)

    rat = ratios(results)
    print()
    if rat:
        print("ratios, FaceGate / face_recognition (throughput: >1 means FaceGate is faster; memory: <1 means smaller)")
        for name, r in rat.items():
            print(
                f"  {name:<18} LFW full x{r['lfw_full_throughput']:.2f}   1280x720 full x{r['big_full_throughput']:.2f}"
                f"   LFW detect x{r['lfw_detect_throughput']:.2f}   peak memory x{r['peak_memory']:.2f}"
            )
    else:
        print("ratios: none (face_recognition was not run or was skipped)")
    print(f"parent process peak RSS: {maxrss_mib():.0f} MiB (the children's peaks are measured apart, by wait4)")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "machine": {
                "cores": cores,
                "usable_cores": len(os.sched_getaffinity(0)),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "load_average": load,
            },
            "config": {
                "threads": args.threads,
                "lfw": str(args.lfw),
                "n": len(selected),
                "lfw_step": step,
                "big": str(args.big),
                "big_original_size": big_w_h,
                "big_size": BIG_SIZE,
                "repeat_big": args.repeat_big,
                "peers": peers,
            },
            "results": results,
            "ratios": rat,
        }
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    return 0 if all("failed" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
