"""MLflow tracking for evaluations and calibrations: where runs live and how they are logged.

Every ``facegate eval dataset``, ``eval lfw`` and ``calibrate`` becomes one MLflow run, so a
number in a report can always be traced to the model weights (sha256) and the exact data
(content hash) it was measured on. The store defaults to a SQLite file under the data folder
(``sqlite:///<data_dir>/mlflow/mlflow.db``, artifacts in ``<data_dir>/mlflow/artifacts``): no
server to run, and the service reads its calibration registry from the same place.

MLflow is imported lazily: importing it costs about a second, which the hot path and commands
that never track anything should not pay.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from facegate.config import Settings, get_settings

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

EVAL_EXPERIMENT = "facegate-evaluation"
CALIBRATION_EXPERIMENT = "facegate-calibration"

_QUIET_LOGGERS = ("mlflow", "alembic", "alembic.runtime.migration")


def mlflow_dir(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return Path(settings.data_dir).resolve() / "mlflow"


def tracking_uri(settings: Settings | None = None) -> str:
    """The configured URI, or the SQLite store under the data folder."""
    settings = settings or get_settings()
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return f"sqlite:///{mlflow_dir(settings) / 'mlflow.db'}"


def artifact_root(settings: Settings | None = None) -> str:
    """Where new experiments keep artifacts (only used when FaceGate creates the experiment)."""
    return (mlflow_dir(settings) / "artifacts").as_uri()


def store_exists(settings: Settings | None = None) -> bool:
    """False when the default SQLite store was never created: nothing can be registered yet,
    so callers on the hot path can skip MLflow (and its one-off schema creation) entirely."""
    settings = settings or get_settings()
    if settings.mlflow_tracking_uri:
        return True
    return (mlflow_dir(settings) / "mlflow.db").exists()


def quiet_mlflow() -> None:
    """MLflow and its Alembic migrations log at INFO on first use; keep the CLI output ours."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def client(settings: Settings | None = None) -> "MlflowClient":
    """A client bound to FaceGate's store (tracking and model registry in the same place)."""
    quiet_mlflow()
    from mlflow import MlflowClient

    uri = tracking_uri(settings)
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    quiet_mlflow()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(mlflow_client: "MlflowClient", name: str, settings: Settings | None = None) -> str:
    """The experiment's id, created with its artifacts under the data folder if new."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    from mlflow.exceptions import MlflowException

    location = None if (settings or get_settings()).mlflow_tracking_uri else f"{artifact_root(settings)}/{name}"
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it between the two calls
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def dataset_hash(root: Path) -> str:
    """Content hash of a labelled image folder, cheap enough to take on every run.

    sha256 over the sorted relative paths with their sizes, plus the manifest's bytes (which
    carry the labels). Re-encoding or relabelling changes it; reading the images does not.
    """
    root = Path(root)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        rel = path.relative_to(root).as_posix()
        digest.update(f"{rel}\0{path.stat().st_size}\n".encode())
    manifest = root / "manifest.csv"
    if manifest.exists():
        digest.update(manifest.read_bytes())
    return digest.hexdigest()


def _flatten(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, bool):
        out[prefix] = float(value)
    elif isinstance(value, (int, float)):
        if math.isfinite(float(value)):
            out[prefix] = float(value)
    elif isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Nested numeric dict -> MLflow metric names (``tar_at_far.1e-03.tar``); non-numbers dropped."""
    out: dict[str, float] = {}
    _flatten("", metrics, out)
    return {_metric_name(k): v for k, v in out.items()}


def _metric_name(name: str) -> str:
    """MLflow allows alphanumerics, _ - . space : / in names."""
    return "".join(c if (c.isalnum() or c in "_-. :/") else "_" for c in name)[:250]


@dataclass
class TrackedRun:
    """A started run: log into it through :attr:`client` with :attr:`run_id`."""

    client: "MlflowClient"
    run_id: str
    artifact_uri: str

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(k), str(v)[:6000]) for k, v in params.items() if v is not None]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, 0) for k, v in flatten_metrics(metrics).items()]
        for start in range(0, len(items), 500):
            self.client.log_batch(self.run_id, metrics=items[start : start + 500])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_json(self, data: Any, artifact_file: str) -> None:
        self.client.log_text(self.run_id, json.dumps(data, indent=1, default=float), artifact_file)


@contextmanager
def start_run(
    experiment: str, run_name: str, settings: Settings | None = None, tags: Mapping[str, Any] | None = None
) -> Iterator[TrackedRun]:
    """One MLflow run, marked FAILED if the block raises, FINISHED otherwise."""
    mlflow_client = client(settings)
    run = mlflow_client.create_run(
        experiment_id(mlflow_client, experiment, settings),
        run_name=run_name,
        tags={k: str(v) for k, v in (tags or {}).items()},
    )
    tracked = TrackedRun(mlflow_client, run.info.run_id, run.info.artifact_uri)
    try:
        yield tracked
    except BaseException:
        mlflow_client.set_terminated(run.info.run_id, status="FAILED")
        raise
    mlflow_client.set_terminated(run.info.run_id, status="FINISHED")


def run_url_hint(run_id: str, settings: Settings | None = None) -> str:
    """How to look at a run: the store and the command that shows it."""
    return f"MLflow run {run_id} in {tracking_uri(settings)} (mlflow ui --backend-store-uri {tracking_uri(settings)})"
