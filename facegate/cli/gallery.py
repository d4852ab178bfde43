"""``facegate gallery create|list|switch-model``: galleries on the local database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facegate.cli.common import DetectorOption, ModelOption, build_service, clear_errors, out
from facegate.security import SYSTEM

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
    from facegate.gallery.schemas import GallerySettings

    with clear_errors():
        settings = GallerySettings(verify_far=verify_far, identify_fpir=identify_fpir, store_crops=store_crops)
        gallery = build_service().create_gallery(name, model, detector, settings, principal=SYSTEM)
        out.print_json(gallery.model_dump_json())


@gallery_app.command("list")
def gallery_list() -> None:
    """List galleries with their model and size."""
    with clear_errors():
        service = build_service()
        table = Table(title="galleries")
        for col in ("name", "model", "detector", "subjects", "templates", "verify FAR", "identify FPIR"):
            table.add_column(col)
        cursor = None
        while True:
            page = service.list_galleries(cursor, 100, principal=SYSTEM)
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
    model: Annotated[str, typer.Option("--model", "-m", help="The recognition model to move to.")],
    photos: Annotated[Path, typer.Option("--photos", help="A folder with one sub-folder of photos per subject id.")],
    detector: Annotated[str | None, typer.Option("--detector", "-d", help="Detector to use from now on.")] = None,
    allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Switch even if some subjects get no template.")] = False,
) -> None:
    """Re-enroll a whole gallery under another model from photos, then switch it in one step."""
    from facegate.evaluation.datasets import IMAGE_SUFFIXES
    from facegate.gallery.inputs import PhotoInput

    with clear_errors():
        by_subject = {
            folder.name: [
                PhotoInput(f.name, f.read_bytes())
                for f in sorted(folder.iterdir())
                if f.is_file() and (f.suffix.lower() in IMAGE_SUFFIXES or "." not in f.name)
            ]
            for folder in sorted(p for p in photos.iterdir() if p.is_dir())
        }
        result = build_service().switch_model(name, model, by_subject, detector, allow_partial, principal=SYSTEM)
        out.print_json(json.dumps(result))
