"""Is a calibration's bootstrap interval honest? Calibrate on some people, test on others.

LFW's people are split into two halves (seeded). The threshold at the target FAR is chosen
on the impostor pairs of half A, with a 95% bootstrap interval that resamples *people*
(``facegate.modelops.registry.calibrate_scores``); the FAR that threshold gives is then
measured on every impostor pair of half B, people the calibration never saw. An honest
interval contains B's FAR (for about 95% of splits).

    .venv/bin/python bench/calibration_honesty.py [--models arcface,dlib] [--far 1e-3]
        [--bootstrap 1000] [--splits 1] [--seed 0]

Uses the cached embeddings ``out/lfw_all_<model>.npz`` (written by bench/calibrate_defaults.py)
when present, otherwise embeds LFW (minutes per model on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from facegate.calibration import impostor_scores
from facegate.engine import FaceEngine
from facegate.evaluation.datasets import embed_dataset, read_dataset
from facegate.modelops.registry import calibrate_from_embeddings

REPO = Path(__file__).resolve().parents[1]


def one_split(vectors: np.ndarray, ids: np.ndarray, model: str, sha: str, far: float, bootstrap: int,
              seed: int) -> dict:
    people = np.unique(ids)
    rng = np.random.default_rng(seed)
    half = set(rng.permutation(people)[: len(people) // 2].tolist())
    in_a = np.array([p in half for p in ids.tolist()])
    started = time.perf_counter()
    result = calibrate_from_embeddings(
        vectors[in_a], ids[in_a], far, model, sha, f"LFW half A (seed {seed})",
        max_impostors=None, bootstrap=bootstrap, seed=seed,
    )
    b_scores = impostor_scores(vectors[~in_a], ids[~in_a])
    b_far = float((b_scores >= result.threshold).mean())
    # What treating pairs as independent would claim: a binomial (Wilson) 95% interval.
    n, p, z = result.n_impostors, result.achieved_far, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half_width = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    binomial = (centre - half_width, centre + half_width)
    # The bootstrap interval is for the FAR of this threshold in the population A was drawn
    # from; B's measured FAR adds its own sampling noise of about the same size, so an interval
    # for "the FAR on another population of this size" is about sqrt(2) wider around the target.
    centre = result.achieved_far
    predict = (centre - np.sqrt(2) * (centre - result.far_ci[0]), centre + np.sqrt(2) * (result.far_ci[1] - centre))
    return {
        "predict_ci": predict,
        "inside_predict": predict[0] <= b_far <= predict[1],
        "seed": seed,
        "people_a": len(half),
        "people_b": len(people) - len(half),
        "pairs_a": result.n_impostors,
        "pairs_b": int(len(b_scores)),
        "threshold": result.threshold,
        "threshold_ci": result.threshold_ci,
        "far_ci": result.far_ci,
        "far_b": b_far,
        "inside": result.far_ci[0] <= b_far <= result.far_ci[1],
        "binomial_ci": binomial,
        "inside_binomial": binomial[0] <= b_far <= binomial[1],
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=REPO.parent / "shared" / "datasets" / "lfw")
    parser.add_argument("--models", default="arcface")
    parser.add_argument("--far", type=float, default=1e-3)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--splits", type=int, default=1, help="Independent seeded splits (seed, seed+1, ...).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "out")
    args = parser.parse_args()

    items = read_dataset(args.lfw)
    for model in args.models.split(","):
        engine = FaceEngine(model=model, detector="scrfd")
        embedded = embed_dataset(engine, items, cache=args.cache_dir / f"lfw_all_{model}.npz")
        ok = embedded.fallbacks != "unreadable"
        vectors, ids = embedded.vectors[ok], embedded.identities[ok]
        print(f"{model}: {int(ok.sum())} LFW images of {len(np.unique(ids))} people; target FAR {args.far:g}, "
              f"{args.bootstrap} bootstrap resamples of people, 95% intervals", flush=True)
        inside = inside_binomial = inside_predict = 0
        for k in range(args.splits):
            r = one_split(vectors, ids, model, embedded.model_sha256, args.far, args.bootstrap, args.seed + k)
            inside += r["inside"]
            inside_binomial += r["inside_binomial"]
            inside_predict += r["inside_predict"]
            print(
                f"  split seed {r['seed']}: A {r['people_a']} people / {r['pairs_a']:,} impostor pairs -> threshold "
                f"{r['threshold']:.4f} CI [{r['threshold_ci'][0]:.4f}, {r['threshold_ci'][1]:.4f}], "
                f"FAR CI [{r['far_ci'][0]:.2e}, {r['far_ci'][1]:.2e}]; B {r['people_b']} people / "
                f"{r['pairs_b']:,} pairs: measured FAR {r['far_b']:.2e} -> "
                f"{'INSIDE' if r['inside'] else 'OUTSIDE'} the interval ({r['seconds']:.0f} s); pairs-as-independent "
                f"binomial interval [{r['binomial_ci'][0]:.2e}, {r['binomial_ci'][1]:.2e}] -> "
                f"{'inside' if r['inside_binomial'] else 'outside'}; sqrt(2)-wider prediction interval "
                f"[{r['predict_ci'][0]:.2e}, {r['predict_ci'][1]:.2e}] -> {'inside' if r['inside_predict'] else 'outside'}",
                flush=True,
            )
        print(f"{model}: B's FAR inside A's people-bootstrap interval in {inside} of {args.splits} split(s); "
              f"inside the pairs-as-independent binomial interval in {inside_binomial} of {args.splits}; inside the "
              f"sqrt(2)-wider prediction interval in {inside_predict} of {args.splits}", flush=True)


if __name__ == "__main__":
    main()
