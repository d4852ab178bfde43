"""Verification benchmarks built on pair scoring: LFW View 2 and arbitrary pair lists."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from facegate.engine import FaceEngine
from facegate.evaluation.lfw import read_pairs
from facegate.evaluation.metrics import summary
from facegate.evaluation.pairs import PairScores, score_pairs


def lfw_image_count(lfw_dir: Path, pairs_file: str = "pairs.txt") -> int:
    pairs = read_pairs(lfw_dir, pairs_file)
    return len({p for pair in pairs for p in (pair.path1, pair.path2)})


def evaluate_lfw(
    engine: FaceEngine,
    lfw_dir: Path,
    pairs_file: str = "pairs.txt",
    on_progress: Callable[[], None] | None = None,
) -> tuple[dict, PairScores]:
    """The official View 2 protocol: 10 folds, each fold's threshold chosen on the other 9."""
    pairs = read_pairs(lfw_dir, pairs_file)
    result = score_pairs(
        engine, [(p.path1, p.path2) for p in pairs], [p.same for p in pairs], on_progress=on_progress
    )
    folds = np.array([p.fold for p in pairs])
    report = summary(result.scores, result.labels, folds)
    report.update(
        {
            "benchmark": f"LFW {pairs_file}",
            "model": engine.recognizer.model_id,
            "model_sha256": engine.recognizer.model_sha256,
            "detector": engine.detector_name,
            "images": result.images,
            "fallbacks": dict(result.fallbacks),
            "unreadable": result.unreadable,
        }
    )
    return report, result
