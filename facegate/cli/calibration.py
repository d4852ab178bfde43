"""``facegate calibration list|promote|show``: calibration versions in the MLflow registry."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from facegate.cli.common import ModelOption, clear_errors, console, out
from facegate.errors import FaceGateError

calibration_app = typer.Typer(help="Calibration versions in the MLflow registry.", no_args_is_help=True)


@calibration_app.command("list")
def calibration_list(model: ModelOption = "arcface") -> None:
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
def calibration_promote(version: int, model: ModelOption = "arcface") -> None:
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
    model: ModelOption = "arcface",
    version: Annotated[int | None, typer.Option("--version", help="A registered version (default: the active one).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calibration JSON.")] = False,
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
