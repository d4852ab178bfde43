"""Write out/lfw_all_arcface.npz: the ArcFace embedding of every LFW photo (the benches' templates).

    .venv/bin/python bench/lfw_embeddings.py            # ~7 min on 2 cores; kept, reused after
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from facegate.engine import FaceEngine
from facegate.evaluation.datasets import embed_dataset, read_dataset

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "datasets" / "lfw")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "lfw_all_arcface.npz")
    args = parser.parse_args()
    items = read_dataset(args.lfw)
    engine = FaceEngine(model="arcface", detector="scrfd")
    started, done = time.perf_counter(), [0]

    def tick() -> None:
        done[0] += 1
        if done[0] % 1000 == 0:
            print(f"{done[0]}/{len(items)} photos, {time.perf_counter() - started:.0f} s", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    embed_dataset(engine, items, on_progress=tick, cache=args.out)
    print(f"{args.out}: {len(items)} photos in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
