"""The latency a liveness challenge adds to a check-in on this machine.

    .venv/bin/python bench/liveness_latency.py [--runs 3]

Times, median of ``--runs``: a single-photo verify (decode + detect + embed + log), and a
liveness check of N JPEG frames of LivePortrait d12 (decode + detect + 106 landmarks per
frame, passive signals, 3-5 embeddings, the single-use UPDATE and the log) for N = 10, 20, 30.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facegate.config import Settings  # noqa: E402
from facegate.gallery import liveness as lv  # noqa: E402
from facegate.gallery.inputs import PhotoInput  # noqa: E402
from facegate.gallery.schemas import GallerySettings  # noqa: E402
from facegate.gallery.service import GalleryService  # noqa: E402
from facegate.liveness.recording import encode_jpeg, read_window  # noqa: E402
from facegate.security import SYSTEM  # noqa: E402

CLIP = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "videos" / "LivePortrait" / "d12.mp4"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    svc = GalleryService(Settings(data_dir=Path(tempfile.mkdtemp()) / "data"), migrate=True)
    svc.create_gallery("lat", settings=GallerySettings(liveness="active"), principal=SYSTEM)
    frames, _ = read_window(CLIP, 0.0, 4.0, fps=10)
    jpegs = [encode_jpeg(f) for f in frames]
    svc.enroll("lat", "p", [PhotoInput("e.jpg", jpegs[0])], create_subject=True, principal=SYSTEM)
    h, w = frames[0].shape[:2]
    print(f"frames {w}x{h}, JPEG ~{sum(map(len, jpegs)) // len(jpegs) // 1024} KiB each; ort threads "
          f"{svc.settings.ort_intra_threads}")
    svc.verify("lat", "p", PhotoInput("warm.jpg", jpegs[1]), principal=SYSTEM)  # warm the sessions
    single = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        svc.verify("lat", "p", PhotoInput("p.jpg", jpegs[2]), principal=SYSTEM)
        single.append(time.perf_counter() - t0)
    base = statistics.median(single)
    print(f"single-photo verify: median {base * 1000:.0f} ms")
    for n in (10, 20, 30):
        step = max(1, len(jpegs) // n)
        pick = jpegs[::step][:n]
        times = [i * 0.1 * step for i in range(len(pick))]
        runs = []
        for _ in range(args.runs):
            ch = lv.issue_challenge(svc.ctx, "lat", SYSTEM, actions=["smile"])
            rec = lv.Recording([PhotoInput(f"{i}.jpg", j) for i, j in enumerate(pick)], times, ch.nonce)
            t0 = time.perf_counter()
            lv.check_recording(svc.ctx, "lat", rec, "p", SYSTEM, now=ch.issued_at + dt.timedelta(seconds=5))
            runs.append(time.perf_counter() - t0)
        med = statistics.median(runs)
        print(f"liveness check, {len(pick)} frames: median {med * 1000:.0f} ms ({med / len(pick) * 1000:.0f} ms/frame); "
              f"added to a check-in: {med * 1000:.0f} ms (+ the verify of the middle face, reusing its embedding)")
    svc.close()


if __name__ == "__main__":
    main()
