"""``facegate gallery create|list|show|settings|delete|switch-model``: galleries on the local
database, or on a server with ``--server``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import DetectorOption, ModelOption, backend, clear_errors, out, print_json

gallery_app = typer.Typer(help="Create and inspect galleries.", no_args_is_help=True)


@gallery_app.command("create")
def gallery_create(
    name: str,
    model: ModelOption = "arcface",
    detector: DetectorOption = "scrfd",
    verify_far: Annotated[float, typer.Option("--verify-far", help="False-accept rate per verification.")] = 1e-4,
    identify_fpir: Annotated[float, typer.Option("--identify-fpir", help="False-positive identification rate per search.")] = 1e-3,
    store_crops: Annotated[bool, typer.Option("--store-crops", help="Keep aligned face crops beside templates.")] = False,
) -> None:
    """Create a gallery bound to one recognition model."""
    with clear_errors():
        settings = {"verify_far": verify_far, "identify_fpir": identify_fpir, "store_crops": store_crops}
        print_json(backend().create_gallery(name, model, detector, settings))


@gallery_app.command("list")
def gallery_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List galleries with their model and size."""
    with clear_errors():
        galleries = backend().galleries()
    if as_json:
        out.print_json(json.dumps([g.model_dump(mode="json") for g in galleries]))
        return
    table = Table(title="galleries")
    for col in ("name", "model", "detector", "subjects", "templates", "verify FAR", "identify FPIR"):
        table.add_column(col)
    for g in galleries:
        table.add_row(g.name, g.model_id, g.detector, str(g.subjects), str(g.templates),
                      f"{g.settings.verify_far:g}", f"{g.settings.identify_fpir:g}")
    out.print(table)


@gallery_app.command("show")
def gallery_show(name: str) -> None:
    """One gallery as JSON: model, detector, settings, size, calibration."""
    with clear_errors():
        print_json(backend().gallery(name))


@gallery_app.command("settings")
def gallery_settings(
    name: str,
    changes: Annotated[list[str], typer.Argument(help="key=value pairs, e.g. verify_far=1e-5 store_crops=true.")],
) -> None:
    """Change some settings of a gallery (values are JSON, else text); the rest stay."""
    parsed = {}
    for change in changes:
        key, eq, value = change.partition("=")
        if not eq or not key:
            raise typer.BadParameter(f"expected key=value, got {change!r}")
        try:
            parsed[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key.strip()] = value
    with clear_errors():
        print_json(backend().update_gallery_settings(name, **parsed))


@gallery_app.command("delete")
def gallery_delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask; the gallery's subjects and templates are erased.")] = False,
) -> None:
    """Delete a gallery with everything in it."""
    if not yes:
        typer.confirm(f"delete gallery {name!r} with all its subjects and templates?", abort=True)
    with clear_errors():
        backend().delete_gallery(name)
    out.print(f"gallery {name} deleted")


@gallery_app.command("switch-model")
def gallery_switch_model(
    name: str,
    model: Annotated[str, typer.Option("--model", "-m", help="The recognition model to move to.")],
    photos: Annotated[Path, typer.Option("--photos", help="A folder with one sub-folder of photos per subject id.")],
    detector: Annotated[str | None, typer.Option("--detector", "-d", help="Detector to use from now on.")] = None,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Switch even if some subjects get no template.")] = False,
) -> None:
    """Re-enroll a whole gallery under another model from photos, then switch it in one step."""
    from facegate.evaluation.datasets import IMAGE_SUFFIXES

    with clear_errors():
        by_subject = {
            folder.name: [
                (f.name, f.read_bytes())
                for f in sorted(folder.iterdir())
                if f.is_file() and (f.suffix.lower() in IMAGE_SUFFIXES or "." not in f.name)
            ]
            for folder in sorted(p for p in photos.iterdir() if p.is_dir())
        }
        result = backend().switch_model(name, model, by_subject, detector, allow_partial)
        out.print_json(json.dumps(result))
