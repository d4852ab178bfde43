"""Calibration versions in the MLflow model registry, and the one the service uses.

Each recognition model has a registered model ``facegate-<model_id>``; each calibration
(FAR -> threshold table, same JSON as ``facegate/data/calibration_default.json``) is one
version of it, its JSON stored as the version's artifact and its provenance as tags (model
sha256, dataset hash, target FAR, threshold, bootstrap interval). The version carrying the
``production`` alias is what :func:`active_calibration` returns, so promoting a version
changes every decision within the cache TTL, and each decision names the version it used
(``mlflow:facegate-arcface/v3``). Without a production version, or when its weights differ
from the gallery's, the shipped default calibration applies.

Thresholds come with a bootstrap interval over *identities*, not pairs
(:mod:`facegate.modelops.bootstrap`, whose names this module re-exports).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from facegate.calibration import Calibration, default_calibration
from facegate.config import Settings, get_settings
from facegate.modelops import tracking
from facegate.modelops.bootstrap import (
    MIN_PAIRS_ABOVE,
    CalibrationResult,
    calibrate_from_embeddings,
    calibrate_scores,
    impostor_pairs,
)

__all__ = [
    "CALIBRATION_ARTIFACT_DIR",
    "CALIBRATION_FILE",
    "MIN_PAIRS_ABOVE",
    "PRODUCTION_ALIAS",
    "CalibrationResult",
    "RegistryCalibrations",
    "VersionInfo",
    "active_calibration",
    "calibrate_from_embeddings",
    "calibrate_scores",
    "impostor_pairs",
    "list_versions",
    "load_version",
    "promote_calibration",
    "publish_calibration",
    "refresh_active_calibration",
    "registered_model_name",
]

log = logging.getLogger(__name__)

PRODUCTION_ALIAS = "production"
CALIBRATION_ARTIFACT_DIR = "calibration"
CALIBRATION_FILE = "calibration.json"


def registered_model_name(model_id: str) -> str:
    return f"facegate-{model_id}"


# --------------------------------------------------------------------------- registry


def _version_tags(calibration: Calibration, extra_tags: dict[str, Any] | None) -> dict[str, str]:
    tags: dict[str, Any] = {
        "model_id": calibration.model_id,
        "model_sha256": calibration.model_sha256,
        "impostor_pairs": calibration.impostor_pairs,
        "min_far": calibration.min_far,
    }
    for key in ("target_far", "threshold", "confidence", "bootstrap", "bootstrap_unit", "identities", "dataset_hash",
                "dataset"):
        if key in calibration.extra:
            tags[key] = calibration.extra[key]
    for key in ("threshold_ci", "far_ci", "far_prediction"):
        if calibration.extra.get(key) is not None:
            tags[key] = json.dumps(calibration.extra[key])
    tags.update(extra_tags or {})
    return {k: str(v)[:4900] for k, v in tags.items()}


def publish_calibration(
    calibration: Calibration,
    run_id: str | None = None,
    promote: bool = False,
    settings: Settings | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
) -> int:
    """Register ``calibration`` as a new version of ``facegate-<model_id>``; return its number.

    The JSON is logged into ``run_id``'s artifacts (a new run in the calibration experiment
    when None) and the version points at it. ``promote`` moves the ``production`` alias to it,
    which the service picks up within ``calibration_cache_ttl_s``.
    """
    settings = settings or get_settings()
    mlflow_client = tracking.client(settings)
    if run_id is None:
        with tracking.start_run(
            tracking.CALIBRATION_EXPERIMENT, f"publish-{calibration.model_id}", settings
        ) as run:
            run.log_params({"model": calibration.model_id, "model_sha256": calibration.model_sha256,
                            "source": calibration.source})
            run_id = run.run_id
    artifact_uri = mlflow_client.get_run(run_id).info.artifact_uri
    mlflow_client.log_text(
        run_id, json.dumps(calibration.to_dict(), indent=1), f"{CALIBRATION_ARTIFACT_DIR}/{CALIBRATION_FILE}"
    )
    name = registered_model_name(calibration.model_id)
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        try:
            mlflow_client.create_registered_model(
                name, description=f"FAR -> threshold calibrations of FaceGate's {calibration.model_id} model"
            )
        except MlflowException:  # created meanwhile by another process
            mlflow_client.get_registered_model(name)
    version = mlflow_client.create_model_version(
        name,
        source=f"{artifact_uri}/{CALIBRATION_ARTIFACT_DIR}",
        run_id=run_id,
        tags=_version_tags(calibration, tags),
        description=description or calibration.source[:5000],
    )
    number = int(version.version)
    if promote:
        promote_calibration(calibration.model_id, number, settings)
    return number


def promote_calibration(model_id: str, version: int, settings: Settings | None = None) -> None:
    """Point the ``production`` alias at ``version`` (it must exist) and drop the cache."""
    settings = settings or get_settings()
    mlflow_client = tracking.client(settings)
    name = registered_model_name(model_id)
    mlflow_client.get_model_version(name, str(version))  # raises if it does not exist
    mlflow_client.set_registered_model_alias(name, PRODUCTION_ALIAS, str(version))
    refresh_active_calibration()


def _read_artifact_json(source: str, filename: str) -> dict:
    parsed = urlparse(source)
    if parsed.scheme in ("", "file"):
        return json.loads((Path(unquote(parsed.path)) / filename).read_text())
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(artifact_uri=f"{source}/{filename}")
    return json.loads(Path(local).read_text())


def load_version(model_id: str, version: int | str, settings: Settings | None = None) -> Calibration:
    """The calibration stored in one registry version, named ``mlflow:facegate-<model>/v<N>``."""
    mlflow_client = tracking.client(settings)
    name = registered_model_name(model_id)
    mv = mlflow_client.get_model_version(name, str(version))
    return _calibration_of(mv)


def _calibration_of(mv: Any) -> Calibration:
    data = _read_artifact_json(mv.source, CALIBRATION_FILE)
    data["name"] = f"mlflow:{mv.name}/v{mv.version}"
    return Calibration.from_dict(data)


@dataclass
class VersionInfo:
    version: int
    aliases: list[str]
    threshold: str
    target_far: str
    model_sha256: str
    dataset_hash: str
    run_id: str
    created: int
    tags: dict[str, str]


def list_versions(model_id: str, settings: Settings | None = None) -> list[VersionInfo]:
    """Every calibration version of a model, newest first (empty when none was registered)."""
    if not tracking.store_exists(settings):
        return []
    mlflow_client = tracking.client(settings)
    name = registered_model_name(model_id)
    from mlflow.exceptions import MlflowException

    try:
        aliases: dict[str, list[str]] = {}
        for alias, version in (mlflow_client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
    except MlflowException:
        return []
    rows = []
    for mv in mlflow_client.search_model_versions(f"name='{name}'"):
        tags = dict(mv.tags or {})
        rows.append(
            VersionInfo(
                version=int(mv.version),
                aliases=aliases.get(str(mv.version), []),
                threshold=tags.get("threshold", ""),
                target_far=tags.get("target_far", ""),
                model_sha256=tags.get("model_sha256", ""),
                dataset_hash=tags.get("dataset_hash", ""),
                run_id=mv.run_id or "",
                created=int(mv.creation_timestamp or 0),
                tags=tags,
            )
        )
    return sorted(rows, key=lambda r: -r.version)


# --------------------------------------------------------------------------- the service's view

_cache: dict[tuple[str, str, str], tuple[float, Calibration]] = {}
_cache_lock = threading.Lock()


def refresh_active_calibration(model_id: str | None = None) -> None:
    """Forget cached production calibrations (all, or one model's) so the next call asks MLflow."""
    with _cache_lock:
        for key in [k for k in _cache if model_id is None or k[1] == model_id]:
            del _cache[key]


def _production(model_id: str, model_sha256: str, settings: Settings) -> Calibration:
    fallback = default_calibration(model_id)
    if not tracking.store_exists(settings):
        return fallback
    try:
        from mlflow.exceptions import MlflowException

        mlflow_client = tracking.client(settings)
        try:
            mv = mlflow_client.get_model_version_by_alias(registered_model_name(model_id), PRODUCTION_ALIAS)
        except MlflowException:
            return fallback  # no registered model or no production alias yet
        tagged = (mv.tags or {}).get("model_sha256", "")
        if tagged and tagged != model_sha256:
            log.warning(
                "production calibration %s v%s was measured on other weights (%s); using the shipped default",
                mv.name, mv.version, tagged[:12],
            )
            return fallback
        calibration = _calibration_of(mv)
        if calibration.model_sha256 != model_sha256:
            log.warning("production calibration %s v%s does not match the model's sha256; using the default",
                        mv.name, mv.version)
            return fallback
        return calibration
    except Exception as exc:  # noqa: BLE001 - the registry must never take verification down
        log.warning("cannot read the calibration registry (%s); using the shipped default", exc)
        return fallback


def active_calibration(
    model_id: str,
    settings: Settings | None = None,
    model_sha256: str | None = None,
    refresh: bool = False,
) -> Calibration:
    """The ``production`` version of ``facegate-<model_id>`` if there is one for these weights
    (``model_sha256``, default: the shipped model's), else the shipped default calibration.

    Cached for ``settings.calibration_cache_ttl_s`` seconds so requests do not query MLflow;
    ``refresh=True`` (or :func:`refresh_active_calibration`) forces a fresh read.
    """
    settings = settings or get_settings()
    sha = model_sha256 or default_calibration(model_id).model_sha256
    key = (tracking.tracking_uri(settings), model_id, sha)
    now = time.monotonic()
    if not refresh:
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
    calibration = _production(model_id, sha, settings)
    with _cache_lock:
        _cache[key] = (now + float(settings.calibration_cache_ttl_s), calibration)
    return calibration


class RegistryCalibrations:
    """The calibration provider backed by the MLflow registry: what :func:`active_calibration`
    returns (production version for these weights, else the shipped default), cached per TTL.
    The caller checks that the returned calibration's sha256 is the gallery's."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def calibration_for(self, model_id: str, model_sha256: str) -> Calibration:
        return active_calibration(model_id, self.settings, model_sha256)
