"""What every ``facegate`` command group shares: the consoles, the common options, the error
and progress wrappers, and the engine, gallery service and workflows a command works on.

No command module imports :mod:`facegate.cli` (the package): they import this module, and the
package imports them to assemble the app.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from facegate.errors import FaceGateError

if TYPE_CHECKING:
    from facegate.cli.backend import LocalBackend
    from facegate.client import FaceGateClient
    from facegate.config import Settings
    from facegate.engine import FaceEngine
    from facegate.gallery.inputs import PhotoInput
    from facegate.gallery.service import GalleryService
    from facegate.workflows import Workflows

console = Console(stderr=True)
out = Console()

# The options most commands share; the default goes on the parameter: ``model: ModelOption = "arcface"``.
ModelOption = Annotated[str, typer.Option("--model", "-m", help="Recognition model: arcface (512-d) or dlib (128-d).")]
DetectorOption = Annotated[str, typer.Option("--detector", "-d", help="Face detector: scrfd or dlib (HOG).")]


# -- local database or a remote server --------------------------------------------------------
# Set by the app's callback on every run from ``--server`` / ``--key`` (FACEGATE_SERVER,
# FACEGATE_API_KEY); None: the commands work on the local database.
_remote: dict[str, str | None] | None = None
# Commands that only make sense on this machine's database, models or registry.
LOCAL_ONLY = {"db", "eval", "calibrate", "calibration", "models", "compare", "demo", "serve"}

ServerOption = Annotated[str | None, typer.Option(
    "--server", envvar="FACEGATE_SERVER", help="Act on this FaceGate server (http://host:8000) instead of the local database.")]
KeyOption = Annotated[str | None, typer.Option("--key", envvar="FACEGATE_API_KEY", help="API key for --server.")]


def remote_options(ctx: typer.Context, server: ServerOption = None, key: KeyOption = None) -> None:
    """Where the commands act: the local database, or with --server a FaceGate server's API."""
    global _remote
    _remote = {"server": server, "key": key} if server else None
    if _remote and ctx.invoked_subcommand in LOCAL_ONLY and not ctx.resilient_parsing:
        require_local(f"facegate {ctx.invoked_subcommand}")


def remote_server() -> str | None:
    return _remote["server"] if _remote else None


def require_local(what: str) -> None:
    """End a command that has no remote form when --server is given, saying so."""
    if _remote:
        console.print(f"[bold red]error[/]: '{what}' works on the local database, models and registry only; "
                      f"run it on the server's machine without --server (got --server {_remote['server']})")
        raise typer.Exit(code=2)


def require_remote(what: str) -> None:
    """End a command that needs a running server when --server is not given."""
    if not _remote:
        console.print(f"[bold red]error[/]: '{what}' needs a running server: give --server URL --key KEY")
        raise typer.Exit(code=2)


def backend() -> FaceGateClient | LocalBackend:
    """The client of the --server, else the local database as the system: the same methods,
    the same result types (see :mod:`facegate.cli.backend`)."""
    if _remote:
        from facegate.client import FaceGateClient

        return FaceGateClient(str(_remote["server"]), api_key=_remote["key"])
    from facegate.cli.backend import LocalBackend

    return LocalBackend()


def _remote_error(exc: Exception) -> str | None:
    """The message of a failed API call (only when the client was used at all)."""
    if "facegate.client" not in sys.modules:
        return None
    import httpx

    from facegate.client import FaceGateAPIError

    if isinstance(exc, FaceGateAPIError):
        return f"({exc.code or exc.status}): {exc.detail}"
    if isinstance(exc, httpx.HTTPError):
        return f"cannot reach {remote_server()}: {exc}"
    return None


@contextmanager
def clear_errors() -> Iterator[None]:
    """FaceGate's own errors, and a server's, end the command with their message, never a traceback."""
    try:
        yield
    except FaceGateError as exc:
        console.print(f"[bold red]error[/] ({exc.code}): {exc.message}")
        raise typer.Exit(code=2) from None
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(code=2) from None
    except Exception as exc:
        message = _remote_error(exc)
        if message is None:
            raise
        console.print(f"[bold red]error[/] {message}")
        raise typer.Exit(code=2) from None


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on standard error (silent when it is not a terminal); yields ``advance()``."""
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
def deferred_progress(description: str) -> Iterator[tuple[Callable[[int], None], Callable[[], None]]]:
    """``(start(total), advance())`` for a job that learns its total only once it runs: the bar
    appears at ``start`` and is closed however the job ends."""
    state: dict[str, Any] = {}

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


def load_engine(model: str, detector: str) -> FaceEngine:
    """The process's shared engine for a model and detector."""
    from facegate.engine import get_engine

    return get_engine(model, detector)


def database_url(settings: Settings) -> str:
    """The configured database: ``FACEGATE_DATABASE_URL``, else the SQLite file in the data folder."""
    from facegate.storage.db import default_database_url

    return settings.database_url or default_database_url(settings.data_dir)


def build_service() -> GalleryService:
    """The gallery service on the configured database, its schema first brought up to date
    (Alembic runs only when the schema is behind), with the MLflow registry's calibrations."""
    from facegate.config import get_settings
    from facegate.gallery.service import GalleryService
    from facegate.modelops.registry import RegistryCalibrations
    from facegate.storage.db import upgrade_if_needed

    settings = get_settings()
    upgrade_if_needed(database_url(settings))
    return GalleryService(settings, calibrations=RegistryCalibrations(settings))


def build_workflows() -> Workflows:
    """The workflows over a fresh gallery service."""
    from facegate.workflows import Workflows

    return Workflows(build_service())


def photo_input(path: Path) -> PhotoInput:
    """A photo file as the service takes it, named by its path."""
    from facegate.gallery.inputs import PhotoInput

    return PhotoInput(name=str(path), data=path.read_bytes())


def print_json(model: Any) -> None:
    """A pydantic model (or anything ``json.dumps`` takes) as JSON on standard output."""
    out.print_json(model.model_dump_json() if hasattr(model, "model_dump_json") else json.dumps(model, default=str))
