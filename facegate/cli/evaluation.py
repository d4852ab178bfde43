"""``facegate eval pairs|lfw|dataset|detection`` and ``facegate calibrate``: accuracy on
benchmarks and your own data, and the threshold at a false-accept rate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import (
    DetectorOption,
    ModelOption,
    clear_errors,
    console,
    deferred_progress,
    load_engine,
    out,
    progress_bar,
)
from facegate.cli.compute import EngineChoice, EngineOption, WorkersOption, compute

eval_app = typer.Typer(help="Measure accuracy on benchmarks and your own data.", no_args_is_help=True)


def _print_fallbacks(fallbacks: dict, images: int) -> None:
    if not fallbacks:
        out.print(f"face found at the normal threshold in all {images} images")
        return
    parts = ", ".join(f"{k}: {v}" for k, v in sorted(fallbacks.items()))
    out.print(f"detection fall-backs over {images} images: {parts} (see 'facegate eval --help')")


def _pair_paths(data: Path, pairs_file: str) -> tuple[list, list]:
    from facegate.evaluation.lfw import read_pairs

    pairs = read_pairs(data, pairs_file)
    return [p.path1 for p in pairs], [p.path2 for p in pairs]


def _run_hint(run_id: str | None) -> str:
    from facegate.modelops.tracking import tracking_uri

    return f"MLflow run {run_id} in {tracking_uri()}" if run_id else "not tracked"


@eval_app.command("pairs")
def eval_pairs(
    pairs: Annotated[Path, typer.Option("--pairs", help="CSV rows path1,path2[,same]; paths relative to the CSV.")],
    out_csv: Annotated[Path, typer.Option("--out", help="Output CSV: the input columns plus 'score'.")],
    model: ModelOption = "arcface",
    detector: DetectorOption = "scrfd",
) -> None:
    """Score every pair in a CSV (higher = more alike) and, when labelled, summarise accuracy."""
    from facegate.evaluation.metrics import summary
    from facegate.evaluation.pairs import read_pairs_csv, score_pairs, write_scores_csv

    with clear_errors():
        pair_list, labels = read_pairs_csv(pairs)
        engine = load_engine(model, detector)
        unique = len({p for pair in pair_list for p in pair})
        with progress_bar("embedding", unique) as advance:
            result = score_pairs(engine, pair_list, labels, on_progress=advance)
        write_scores_csv(out_csv, pair_list, result, relative_to=pairs.parent)
        out.print(f"{len(pair_list)} pairs over {result.images} images scored -> {out_csv}")
        _print_fallbacks(result.fallbacks, result.images)
        if labels is not None and 0 < sum(labels) < len(labels):
            report = summary(result.scores, result.labels)
            out.print(f"ROC AUC {report['auc']:.4f}, EER {report['eer']:.4f}")


def _lfw_table(report: dict, title: str) -> Table:
    kfold = report.get("kfold", {})
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    if kfold:
        table.add_row("10-fold accuracy", f"{kfold['mean'] * 100:.2f}% ± {kfold['std'] * 100:.2f}")
    table.add_row("ROC AUC", f"{report['auc']:.5f}")
    table.add_row("EER", f"{report['eer'] * 100:.2f}%")
    for key, value in report["tar_at_far"].items():
        flag = "" if value["resolvable"] else " (too few impostors)"
        table.add_row(f"TAR @ FAR {key}", f"{value['tar'] * 100:.2f}%{flag}")
    table.add_row("pairs / images", f"{report['n_pairs']} / {report['images']}")
    fallbacks = report["fallbacks"]
    table.add_row("detection fall-backs", ", ".join(f"{k}: {v}" for k, v in fallbacks.items()) or "none")
    return table


@eval_app.command("lfw")
def eval_lfw(
    data: Annotated[Path, typer.Option("--data", help="LFW folder with pairs.txt.")] = Path("../shared/datasets/lfw"),
    model: ModelOption = "arcface",
    detector: DetectorOption = "scrfd",
    pairs_file: Annotated[str, typer.Option("--pairs-file", help="pairs.txt (View 2) or pairsDevTest.txt.")] = "pairs.txt",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report as JSON.")] = None,
    scores_out: Annotated[Path | None, typer.Option("--scores", help="Write per-pair scores as CSV.")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Embeddings cache (.npz) to reuse or create.")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Record the run in MLflow.")] = True,
    engine: EngineOption = EngineChoice.local,
    workers: WorkersOption = 0,
) -> None:
    """LFW View 2: 10-fold accuracy (threshold from the other 9 folds), AUC, EER, TAR@FAR."""
    from facegate.evaluation.verification import evaluate_lfw, lfw_image_count

    with clear_errors():
        face_engine = load_engine(model, detector)
        with progress_bar(f"LFW {model}", lfw_image_count(data, pairs_file)) as advance:
            report, result = evaluate_lfw(face_engine, data, pairs_file, on_progress=advance, cache=cache,
                                          compute=compute(engine, workers))
        out.print(_lfw_table(report, f"LFW {pairs_file}: {model} + {detector}"))
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(report, indent=2, default=float))
        if scores_out:
            from facegate.evaluation.pairs import write_scores_csv

            pairs_list = [(a, b) for a, b in zip(*_pair_paths(data, pairs_file))]
            write_scores_csv(scores_out, pairs_list, result, relative_to=data)
        if track:
            from facegate.modelops.jobs import track_lfw

            run_id = track_lfw(report, data, files=[f for f in (json_out, scores_out) if f],
                               scores=result.scores, labels=result.labels)
            console.print(_run_hint(run_id))


def _dataset_table(path: Path, e, far: float) -> Table:
    """The table of ``facegate eval dataset``: verification, operating point, identification."""
    v, op = e.verification, e.operating_point
    table = Table(title=f"{path.name}: {e.model} + {e.detector} ({e.images} images, {e.identities} people)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("pairs genuine / impostor", f"{e.pairs['genuine']:,} / {e.pairs['impostor']:,}")
    table.add_row("ROC AUC", f"{v['auc']:.5f}")
    table.add_row("EER", f"{v['eer'] * 100:.2f}%")
    for key, point in v["tar_at_far"].items():
        flag = "" if point["resolvable"] else f" (unresolvable: < {point['impostors_needed']:,} impostors)"
        table.add_row(f"TAR @ FAR {key}", f"{point['tar'] * 100:.2f}%{flag}")
    table.add_row(f"threshold @ FAR {far:g}", f"{op['threshold']:.4f} ({op['calibration']})")
    table.add_row("accuracy / precision / recall / F1",
                  f"{op['accuracy'] * 100:.2f}% / {op['precision'] * 100:.2f}% / {op['recall'] * 100:.2f}% / {op['f1']:.3f}")
    ident = e.identification
    if ident.get("probes"):
        table.add_row("rank-1 / rank-5", f"{ident['rank1'] * 100:.2f}% / {ident['rank5'] * 100:.2f}%")
    for key, point in e.open_set.get("dir_at_fpir", {}).items():
        flag = "" if point["resolvable"] else " (unresolvable)"
        table.add_row(f"DIR @ FPIR {key}", f"{point['dir'] * 100:.2f}%{flag}")
    for name, row in e.by_condition.items():
        table.add_row(f"  {name}: TAR / FRR", f"{row['tar'] * 100:.1f}% / {row['frr'] * 100:.1f}%")
    table.add_row("detection fall-backs", ", ".join(f"{k}: {n}" for k, n in e.fallbacks.items()) or "none")
    return table


@eval_app.command("dataset")
def eval_dataset(
    path: Annotated[Path, typer.Argument(help="A folder per person, or a folder with manifest.csv (relative_path,identity).")],
    model: ModelOption = "arcface",
    detector: DetectorOption = "scrfd",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the plots, report.md and metrics.json.")] = None,
    far: Annotated[float, typer.Option("--far", help="FAR of the operating threshold (from the active calibration).")] = 1e-3,
    max_impostors: Annotated[int, typer.Option("--max-impostors", help="Impostor pairs to score (seeded sample above).")] = 1_000_000,
    limit_identities: Annotated[int | None, typer.Option("--limit-identities", help="Only the first N people (sorted).")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Embeddings cache (.npz) to reuse or create.")] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Record the run in MLflow.")] = True,
    engine: EngineOption = EngineChoice.local,
    workers: WorkersOption = 0,
) -> None:
    """Verification and identification accuracy on a labelled collection, with plots and a report."""
    from facegate.modelops.jobs import evaluate_dataset_job

    with clear_errors():
        with deferred_progress(f"embedding ({model})") as (start, advance):
            job = evaluate_dataset_job(
                path, model, detector, out_dir, far, max_impostors, limit_identities, cache, track=track,
                on_start=start, on_progress=advance, compute=compute(engine, workers),
            )
        out.print(_dataset_table(path, job.evaluation, far))
        for note in job.evaluation.notes:
            out.print(f"note: {note}")
        out.print(f"report: {job.files['report']}")
        console.print(_run_hint(job.run_id))


@eval_app.command("detection")
def eval_detection(
    xml: Annotated[Path, typer.Option("--xml", help="dlib imglab XML.")] = Path("../shared/datasets/dlib_faces/testing.xml"),
    detector: DetectorOption = "scrfd",
    iou: Annotated[float, typer.Option("--iou", help="IoU for a detection to count as a hit.")] = 0.4,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Detection recall and false positives against annotated boxes."""
    from facegate.detection import create_detector
    from facegate.evaluation.detection_eval import evaluate_detection, read_imglab_xml
    from facegate.imaging import load_image

    with clear_errors():
        det = create_detector(detector)
        report = evaluate_detection(read_imglab_xml(xml), lambda p: det.detect(load_image(p)), iou)
        if as_json:
            out.print_json(json.dumps(report.to_dict()))
            return
        out.print(
            f"{detector}: recall {report.recall * 100:.1f}% ({report.matched}/{report.faces}) at IoU {iou}, "
            f"{report.false_positives} false positives over {report.images} images "
            f"({report.false_positives_per_image:.2f} per image)"
        )


def _print_calibration(job) -> None:
    from facegate.modelops.registry import registered_model_name

    r = job.result
    conf = round(r.confidence * 100)
    out.print(
        f"{r.calibration.model_id}: threshold {r.threshold:.4f} at FAR {r.target_far:g} "
        f"({r.n_impostors:,} impostor pairs, {r.n_identities} people)"
    )
    if r.bootstrap:
        out.print(
            f"  {conf}% interval ({r.bootstrap} resamples of people): threshold "
            f"[{r.threshold_ci[0]:.4f}, {r.threshold_ci[1]:.4f}], FAR at {r.threshold:.4f} "
            f"[{r.far_ci[0]:.2e}, {r.far_ci[1]:.2e}]; on other people expect "
            f"[{r.extra['far_prediction'][0]:.2e}, {r.extra['far_prediction'][1]:.2e}]"
        )
    if not r.resolvable:
        out.print(f"  warning: fewer than 10/FAR impostor pairs; FAR {r.target_far:g} is not resolved by this sample")
    out.print(f"  table: FAR {r.calibration.fars[0]:g} down to {r.calibration.min_far:.2e}")
    name = registered_model_name(r.calibration.model_id)
    state_text = " and promoted to production" if job.promoted else " (promote with 'facegate calibration promote')"
    out.print(f"registered {name} version {job.version}{state_text}")


def calibrate(
    dataset: Annotated[Path, typer.Option("--dataset", help="Labelled collection whose impostor pairs set the threshold.")],
    target_far: Annotated[float, typer.Option("--target-far", help="False-accept rate per comparison to calibrate at.")] = 1e-4,
    model: ModelOption = "arcface",
    detector: DetectorOption = "scrfd",
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples of the people (0: none).")] = 1000,
    promote: Annotated[bool, typer.Option("--promote", help="Make this version the production calibration.")] = False,
    max_impostors: Annotated[int, typer.Option("--max-impostors", help="Impostor pairs to score (seeded sample above).")] = 5_000_000,
    limit_identities: Annotated[int | None, typer.Option("--limit-identities", help="Only the first N people (sorted).")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Embeddings cache (.npz) to reuse or create.")] = None,
    engine: EngineOption = EngineChoice.local,
    workers: WorkersOption = 0,
) -> None:
    """Choose the threshold at a FAR on a dataset, with a bootstrap interval; register it in MLflow."""
    from facegate.modelops.jobs import calibrate_dataset_job

    with clear_errors():
        with deferred_progress(f"embedding ({model})") as (start, advance):
            job = calibrate_dataset_job(
                dataset, target_far, model, detector, bootstrap, promote, True, max_impostors, limit_identities, cache,
                on_start=start, on_progress=advance, compute=compute(engine, workers),
            )
        _print_calibration(job)
        console.print(_run_hint(job.run_id))
