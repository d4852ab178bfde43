"""Verification benchmarks built on pair scoring: LFW View 2 and arbitrary pair lists."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facegate.engine import FaceEngine
from facegate.evaluation.datasets import LabelledImage, embed_dataset
from facegate.evaluation.lfw import read_pairs
from facegate.evaluation.metrics import summary
from facegate.evaluation.pairs import PairScores
from facegate.parallel import Compute


def lfw_image_count(lfw_dir: Path, pairs_file: str = "pairs.txt") -> int:
    pairs = read_pairs(lfw_dir, pairs_file)
    return len({p for pair in pairs for p in (pair.path1, pair.path2)})


def evaluate_lfw(
    engine: FaceEngine,
    lfw_dir: Path,
    pairs_file: str = "pairs.txt",
    on_progress: Callable[[], None] | None = None,
    cache: Path | None = None,
    compute: Compute | None = None,
) -> tuple[dict, PairScores]:
    """The official View 2 protocol: 10 folds, each fold's threshold chosen on the other 9.

    Each image is embedded once (optionally through an ``.npz`` cache that may hold more
    images, such as all of LFW embedded for calibration), here or on Ray (``compute``).
    """
    pairs = read_pairs(lfw_dir, pairs_file)
    unique = list(dict.fromkeys(p for pair in pairs for p in (pair.path1, pair.path2)))
    embedded = embed_dataset(
        engine, [LabelledImage(p, p.parent.name) for p in unique], on_progress=on_progress, cache=cache,
        compute=compute,
    )
    row = {Path(p).resolve(): i for i, p in enumerate(embedded.paths)}
    vectors = embedded.vectors
    first = np.array([row[p.path1.resolve()] for p in pairs])
    second = np.array([row[p.path2.resolve()] for p in pairs])
    scores = np.einsum("ij,ij->i", vectors[first], vectors[second]).astype(np.float64)
    unreadable = embedded.fallbacks == "unreadable"
    scores[unreadable[first] | unreadable[second]] = -1.0
    labels = np.array([p.same for p in pairs], dtype=np.int64)
    fallbacks = Counter(str(f) for f in embedded.fallbacks if f)
    result = PairScores(
        scores=scores,
        labels=labels,
        fallbacks=fallbacks,
        images=len(unique),
        unreadable=[p for p, bad in zip(embedded.paths, unreadable) if bad],
    )
    folds = np.array([p.fold for p in pairs])
    # View 1 files (pairsDevTest.txt) are a single fold: no k-fold accuracy, the rest stands.
    report = summary(scores, labels, folds if len(np.unique(folds)) > 1 else None)
    report.update(
        {
            "benchmark": f"LFW {pairs_file}",
            "model": engine.recognizer.model_id,
            "model_sha256": engine.recognizer.model_sha256,
            "detector": engine.detector_name,
            "images": result.images,
            "fallbacks": dict(fallbacks),
            "unreadable": result.unreadable,
        }
    )
    return report, result
