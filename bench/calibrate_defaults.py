"""Measure FaceGate's shipped default calibrations on LFW impostor pairs.

Embeds every LFW image (the 9,056 kept in ../shared/datasets/lfw) with each model, scores
every pair of images of different people (about 41 million pairs), and writes the
FAR -> threshold table to facegate/data/calibration_default.json. Also prints the View 2
10-fold accuracy from the same embeddings as a cross-check.

    .venv/bin/python bench/calibrate_defaults.py [--models arcface,dlib] [--cache-dir out]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from facegate.calibration import calibrate_from_impostors, impostor_scores
from facegate.engine import FaceEngine
from facegate.evaluation.datasets import embed_dataset, read_dataset

REPO = Path(__file__).resolve().parents[1]
# Below this rate LFW's highest "impostor" scores are the same person filed under two names
# (Sung_Hong_Choi / Choi_Sung-hong, Sepp / Joseph Blatter) or mislabelled photos: the table
# stops here and FaceGate extrapolates stricter thresholds below it.
MIN_FAR = 1e-5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "datasets" / "lfw")
    parser.add_argument("--models", default="arcface,dlib")
    parser.add_argument("--cache-dir", type=Path, default=REPO / "out")
    parser.add_argument("--out", type=Path, default=REPO / "facegate" / "data" / "calibration_default.json")
    args = parser.parse_args()

    items = read_dataset(args.lfw)
    shipped = json.loads(args.out.read_text()) if args.out.exists() else {}
    for model in args.models.split(","):
        engine = FaceEngine(model=model, detector="scrfd")
        started = time.perf_counter()
        done = [0]

        def tick() -> None:
            done[0] += 1
            if done[0] % 500 == 0:
                print(f"  {model}: {done[0]}/{len(items)} images, {time.perf_counter() - started:.0f} s", flush=True)

        embedded = embed_dataset(engine, items, on_progress=tick, cache=args.cache_dir / f"lfw_all_{model}.npz")
        ok = embedded.fallbacks != "unreadable"
        impostors = impostor_scores(embedded.vectors[ok], embedded.identities[ok])
        calibration = calibrate_from_impostors(
            impostors,
            model_id=engine.model_id,
            model_sha256=engine.model_sha256,
            source=(
                f"LFW: all {int(ok.sum())} images of {len(set(embedded.identities[ok]))} people in "
                f"../shared/datasets/lfw, {len(impostors):,} impostor pairs, detector scrfd; measured down to "
                f"FAR {MIN_FAR:g}, extrapolated below (LFW's tail there is label noise)"
            ),
            min_far=MIN_FAR,
        )
        shipped[model] = calibration.to_dict()
        print(f"{model}: {len(impostors):,} impostor pairs; thresholds:")
        for far in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7):
            flag = "" if far >= calibration.fars[-1] else " (extrapolated)"
            print(f"  FAR {far:.0e}: {calibration.threshold_at(far):.4f}{flag}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(shipped, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
