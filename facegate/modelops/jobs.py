"""The tracked jobs behind ``facegate eval dataset``, ``eval lfw`` and ``calibrate``.

Each one embeds (or loads cached templates), computes, writes its files and records an MLflow
run with the model's sha256 and the data's content hash, so the CLI stays a thin shell and
scripts (bench/accuracy_table.py) get the very same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facegate.config import Settings, get_settings
from facegate.evaluation.datasets import EmbeddedSet, LabelledImage, embed_dataset, read_dataset
from facegate.modelops import tracking
from facegate.parallel import Compute


def select_identities(items: list[LabelledImage], limit: int | None) -> list[LabelledImage]:
    """The first ``limit`` people in sorted order, all their images (deterministic)."""
    if not limit:
        return items
    keep = set(sorted({i.identity for i in items})[:limit])
    return [i for i in items if i.identity in keep]


def embed_path(
    path: Path,
    model: str,
    detector: str,
    cache: Path | None = None,
    limit_identities: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[], None] | None = None,
    compute: Compute | None = None,
) -> EmbeddedSet:
    """Templates of every labelled image under ``path`` (through the ``.npz`` cache if given),
    computed here or on Ray (``compute``)."""
    from facegate.engine import get_engine

    items = select_identities(read_dataset(Path(path)), limit_identities)
    if on_start:
        on_start(len(items))
    engine = get_engine(model, detector)
    return embed_dataset(engine, items, on_progress=on_progress, cache=cache, compute=compute)


def _run_params(path: Path, embedded: EmbeddedSet, detector: str, **more: Any) -> dict[str, Any]:
    return {
        "model": embedded.model_id,
        "model_sha256": embedded.model_sha256,
        "detector": detector,
        "dataset_path": str(Path(path).resolve()),
        "dataset_hash": tracking.dataset_hash(Path(path)),
        "images": len(embedded.paths),
        "identities": len(set(np.asarray(embedded.identities).tolist())),
        **more,
    }


@dataclass
class DatasetEvalJob:
    evaluation: Any  # DatasetEvaluation
    files: dict[str, Path]
    run_id: str | None
    dataset_hash: str


def evaluate_dataset_job(
    path: Path,
    model: str = "arcface",
    detector: str = "scrfd",
    out_dir: Path | None = None,
    far: float = 1e-3,
    max_impostors: int = 1_000_000,
    limit_identities: int | None = None,
    cache: Path | None = None,
    settings: Settings | None = None,
    track: bool = True,
    embedded: EmbeddedSet | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[], None] | None = None,
    compute: Compute | None = None,
) -> DatasetEvalJob:
    """Embed, evaluate at the active calibration's threshold, write plots/report, log a run."""
    from facegate.evaluation.dataset_eval import evaluate_embedded
    from facegate.evaluation.report import write_report
    from facegate.modelops.registry import active_calibration

    settings = settings or get_settings()
    path = Path(path)
    if embedded is None:
        embedded = embed_path(path, model, detector, cache, limit_identities, on_start, on_progress, compute)
    calibration = active_calibration(embedded.model_id, settings, embedded.model_sha256, refresh=True)
    evaluation, pairs = evaluate_embedded(
        embedded, calibration, far=far, max_impostors=max_impostors, dataset=str(path), detector=detector
    )
    out_dir = Path(out_dir) if out_dir else Path("out") / "eval" / f"{path.name}_{embedded.model_id}"
    params = _run_params(path, embedded, detector, far=far, max_impostors=max_impostors,
                         limit_identities=limit_identities or "", calibration=calibration.name)
    extra: dict[str, Any] = {"dataset_hash": params["dataset_hash"]}
    run_id = None
    if track:
        with tracking.start_run(tracking.EVAL_EXPERIMENT, f"eval-{path.name}-{embedded.model_id}", settings,
                                tags={"kind": "eval-dataset"}) as run:
            run_id = run.run_id
            extra["mlflow_run_id"] = run_id
            files = write_report(evaluation, pairs, out_dir, extra)
            run.log_params(params)
            run.log_metrics(
                {
                    **{k: v for k, v in evaluation.headline().items() if v is not None},
                    "verification": evaluation.verification,
                    "operating_point": {k: v for k, v in evaluation.operating_point.items() if k != "far_target"},
                    "identification": evaluation.identification,
                    "open_set": evaluation.open_set,
                    "by_condition": evaluation.by_condition,
                    "fallback_counts": evaluation.fallbacks,
                }
            )
            for file in files.values():
                run.log_artifact(file, "report")
    else:
        files = write_report(evaluation, pairs, out_dir, extra)
    return DatasetEvalJob(evaluation, files, run_id, params["dataset_hash"])


@dataclass
class CalibrationJob:
    result: Any  # CalibrationResult
    version: int | None
    run_id: str
    dataset_hash: str
    promoted: bool


def calibrate_dataset_job(
    path: Path,
    target_far: float = 1e-4,
    model: str = "arcface",
    detector: str = "scrfd",
    bootstrap: int = 1000,
    promote: bool = False,
    register: bool = True,
    max_impostors: int = 5_000_000,
    limit_identities: int | None = None,
    cache: Path | None = None,
    settings: Settings | None = None,
    seed: int = 0,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[], None] | None = None,
    compute: Compute | None = None,
) -> CalibrationJob:
    """Calibrate on a dataset's impostor pairs, log the run, register a version (and promote)."""
    from facegate.modelops.registry import calibrate_from_embeddings, publish_calibration

    settings = settings or get_settings()
    path = Path(path)
    embedded = embed_path(path, model, detector, cache, limit_identities, on_start, on_progress, compute)
    usable = embedded.fallbacks != "unreadable"
    params = _run_params(path, embedded, detector, target_far=target_far, bootstrap=bootstrap,
                         max_impostors=max_impostors, limit_identities=limit_identities or "", seed=seed)
    source = (
        f"{path.name}: {int(usable.sum())} images of {params['identities']} people in {path}, "
        f"detector {detector}, dataset hash {params['dataset_hash'][:12]}"
    )
    result = calibrate_from_embeddings(
        embedded.vectors, embedded.identities, target_far, embedded.model_id, embedded.model_sha256, source,
        usable=usable, max_impostors=max_impostors, bootstrap=bootstrap, seed=seed,
    )
    result.calibration.extra.update({"dataset": str(path.resolve()), "dataset_hash": params["dataset_hash"],
                                     "detector": detector})
    fallbacks = {str(k): int(v) for k, v in zip(*np.unique(embedded.fallbacks[embedded.fallbacks != ""],
                                                            return_counts=True))}
    with tracking.start_run(tracking.CALIBRATION_EXPERIMENT, f"calibrate-{path.name}-{embedded.model_id}", settings,
                            tags={"kind": "calibrate"}) as run:
        run.log_params(params)
        run.log_metrics({**result.summary(), "table_min_far": result.calibration.min_far,
                         "fallback_counts": fallbacks})
        run.log_json(result.calibration.to_dict(), "calibration_candidate.json")
        version = publish_calibration(result.calibration, run.run_id, promote=promote, settings=settings) if register else None
    return CalibrationJob(result, version, run.run_id, params["dataset_hash"], promote and register)


def lfw_plots(scores: np.ndarray, labels: np.ndarray, out_dir: Path, title: str) -> list[Path]:
    """ROC, DET and score-histogram PNGs of the LFW pair scores (the same plots as eval dataset)."""
    from facegate.evaluation.dataset_eval import PairSet
    from facegate.evaluation.report import plot_det, plot_histogram, plot_roc

    labels = np.asarray(labels, dtype=np.int64)
    none = np.zeros(len(labels), np.int64)
    pairs = PairSet(none, none, np.asarray(scores, dtype=np.float64), labels, int((labels == 0).sum()))
    return [plot_roc(pairs, out_dir / "roc.png", title), plot_det(pairs, out_dir / "det.png", title),
            plot_histogram(pairs, out_dir / "scores.png", title)]


def track_lfw(report: dict[str, Any], data: Path, settings: Settings | None = None,
              files: list[Path] | None = None, scores: np.ndarray | None = None,
              labels: np.ndarray | None = None) -> str:
    """Record an ``eval lfw`` report as a run (params, flattened metrics, the JSON, and with
    ``scores``/``labels`` the ROC, DET and histogram plots)."""
    with tracking.start_run(tracking.EVAL_EXPERIMENT, f"eval-lfw-{report['model']}", settings,
                            tags={"kind": "eval-lfw"}) as run:
        run.log_params({
            "model": report["model"], "model_sha256": report["model_sha256"], "detector": report["detector"],
            "dataset_path": str(Path(data).resolve()), "dataset_hash": tracking.dataset_hash(Path(data)),
            "benchmark": report["benchmark"], "images": report["images"],
        })
        run.log_metrics({
            "auc": report["auc"], "eer": report["eer"],
            "kfold_accuracy": report.get("kfold", {}).get("mean"), "kfold_std": report.get("kfold", {}).get("std"),
            "tar_at_far": report["tar_at_far"], "fallback_counts": report.get("fallbacks", {}),
        })
        run.log_json(report, "report/lfw.json")
        for file in files or []:
            run.log_artifact(file, "report")
        if scores is not None and labels is not None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="facegate-lfw-plots-") as tmp:
                title = f"LFW {report['benchmark']}: {report['model']} + {report['detector']}"
                for plot in lfw_plots(scores, labels, Path(tmp), title):
                    run.log_artifact(plot, "plots")
        return run.run_id
