"""The ``--engine local|ray`` and ``--workers N`` options of the commands that analyse many
photos (``enroll bulk``, ``eval``, ``calibrate``): where the per-photo work runs."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from facegate.parallel import Compute


class EngineChoice(str, Enum):
    local = "local"
    ray = "ray"


EngineOption = Annotated[EngineChoice, typer.Option(
    "--engine", help="local: this process, one engine; ray: a local Ray cluster, one engine per actor.")]
WorkersOption = Annotated[int, typer.Option(
    "--workers", min=0, help="Ray actors, one CPU each (0: every CPU of this machine); ignored with --engine local.")]


def compute(engine: EngineChoice, workers: int) -> Compute:
    from facegate.parallel import Compute

    return Compute(engine.value, workers)
