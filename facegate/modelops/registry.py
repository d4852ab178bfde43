"""Calibration versions in the MLflow model registry, and the one the service uses.

Each recognition model has a registered model ``facegate-<model_id>``; each calibration
(FAR -> threshold table, same JSON as ``facegate/data/calibration_default.json``) is one
version of it, its JSON stored as the version's artifact and its provenance as tags (model
sha256, dataset hash, target FAR, threshold, bootstrap interval). The version carrying the
``production`` alias is what :func:`active_calibration` returns, so promoting a version
changes every decision within the cache TTL, and each decision names the version it used
(``mlflow:facegate-arcface/v3``). Without a production version, or when its weights differ
from the gallery's, the shipped default calibration applies.

Thresholds come with a bootstrap interval over *identities*, not pairs: impostor pairs share
people, so a few people who look alike move many pairs at once, and resampling pairs would
give an interval far too narrow.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from facegate.calibration import CALIBRATION_FARS, Calibration, default_calibration
from facegate.config import Settings, get_settings
from facegate.evaluation.dataset_eval import sample_impostor_pairs
from facegate.modelops import tracking

log = logging.getLogger(__name__)

PRODUCTION_ALIAS = "production"
CALIBRATION_ARTIFACT_DIR = "calibration"
CALIBRATION_FILE = "calibration.json"
# A FAR is "resolved" by a sample when at least this many impostor pairs lie above its
# threshold: with fewer, the threshold rests on a handful of pairs and jumps between samples.
MIN_PAIRS_ABOVE = 10


def registered_model_name(model_id: str) -> str:
    return f"facegate-{model_id}"


# --------------------------------------------------------------------------- calibration


@dataclass
class CalibrationResult:
    """A calibration with its bootstrap uncertainty at the target FAR.

    ``threshold_ci``: percentile interval of the threshold re-chosen on each resample of the
    people. ``far_ci``: percentile interval of the FAR that the chosen ``threshold`` gives on
    those resamples, i.e. the range of false-accept rates to expect on another population
    drawn like this one.
    """

    calibration: Calibration
    target_far: float
    threshold: float
    achieved_far: float
    threshold_ci: tuple[float, float]
    far_ci: tuple[float, float]
    confidence: float
    bootstrap: int
    n_impostors: int
    n_identities: int
    resolvable: bool
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "target_far": self.target_far,
            "threshold": self.threshold,
            "achieved_far": self.achieved_far,
            "threshold_ci_low": self.threshold_ci[0],
            "threshold_ci_high": self.threshold_ci[1],
            "far_ci_low": self.far_ci[0],
            "far_ci_high": self.far_ci[1],
            "far_prediction_low": (self.extra.get("far_prediction") or [math.nan])[0],
            "far_prediction_high": (self.extra.get("far_prediction") or [math.nan, math.nan])[1],
            "confidence": self.confidence,
            "bootstrap": self.bootstrap,
            "n_impostors": self.n_impostors,
            "n_identities": self.n_identities,
            "resolvable": self.resolvable,
        }


def _threshold_above(ordered_desc: np.ndarray, allowed: int) -> float:
    """The threshold accepting exactly the ``allowed`` highest scores (accept: score >= t)."""
    if allowed >= len(ordered_desc):
        return float(ordered_desc[-1])
    return float(np.nextafter(ordered_desc[allowed], np.inf))


def calibrate_scores(
    impostor_scores: np.ndarray,
    target_far: float,
    model_id: str,
    model_sha256: str,
    source: str,
    *,
    identities: tuple[np.ndarray, np.ndarray] | None = None,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    name: str = "candidate",
    fars: tuple[float, ...] = CALIBRATION_FARS,
    min_pairs_above: int = MIN_PAIRS_ABOVE,
) -> CalibrationResult:
    """Choose the threshold at ``target_far`` from impostor scores, with a bootstrap interval.

    ``identities`` gives, per score, the two people of the pair (any labels); the bootstrap
    then draws people with replacement and weights each pair by how often both of its people
    were drawn. Without it the interval resamples pairs (too narrow when pairs share people;
    said so in ``extra['bootstrap_unit']``). The table runs from FAR 1e-1 down to the smallest
    rate with at least ``min_pairs_above`` impostor pairs above its threshold.
    """
    scores = np.asarray(impostor_scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError("impostor scores must be a 1-D array of finite numbers")
    n = len(scores)
    if not 0 < target_far < 1:
        raise ValueError(f"target FAR must be in (0, 1), got {target_far}")
    if n * target_far < 1:
        raise ValueError(
            f"{n:,} impostor pairs cannot show FAR {target_far:g}: at least {math.ceil(1 / target_far):,} are needed "
            f"(and {math.ceil(min_pairs_above / target_far):,} for a stable threshold)"
        )
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]

    # Point estimate and the table (target FAR always included, exact).
    min_far = min_pairs_above / n
    grid = sorted({float(f) for f in fars if f >= min_far * 0.999} | {float(target_far)}, reverse=True)
    table_fars = [f for f in grid if math.floor(f * n) >= 1]
    table_thresholds = [_threshold_above(ordered, int(math.floor(f * n))) for f in table_fars]
    allowed = int(math.floor(target_far * n))
    threshold = _threshold_above(ordered, allowed)
    achieved = allowed / n

    # Bootstrap.
    rng = np.random.default_rng(seed)
    thresholds_b = np.empty(bootstrap)
    fars_b = np.empty(bootstrap)
    if identities is not None:
        a_labels, b_labels = (np.asarray(x) for x in identities)
        if len(a_labels) != n or len(b_labels) != n:
            raise ValueError("identities must give two labels per impostor score")
        labels, inverse = np.unique(np.concatenate([a_labels, b_labels]), return_inverse=True)
        a_idx, b_idx = inverse[:n], inverse[n:]
        n_ids = len(labels)
        from scipy import sparse

        # Pairs per pair of people: the total weight of a resample is c^T M c.
        pair_counts = sparse.coo_matrix((np.ones(n), (a_idx, b_idx)), shape=(n_ids, n_ids)).tocsr()
        a_sorted, b_sorted = a_idx[order], b_idx[order]
        unit = "identity"
    else:
        n_ids = 0
        unit = "pair"
    for r in range(bootstrap):
        if identities is not None:
            counts = rng.multinomial(n_ids, np.full(n_ids, 1.0 / n_ids)).astype(np.float64)
            total = float(counts @ (pair_counts @ counts))
            budget = target_far * total
            k = min(n, max(4096, int(target_far * n * 40)))
            while True:
                weights = counts[a_sorted[:k]] * counts[b_sorted[:k]]
                cumulative = np.cumsum(weights)
                if cumulative[-1] > budget or k == n:
                    break
                k = min(n, k * 4)
            cut = int(np.searchsorted(cumulative, budget, side="right"))  # pairs that fit the budget
            thresholds_b[r] = _threshold_above(ordered, cut) if cut < n else float(ordered[-1])
            fars_b[r] = (float(cumulative[allowed - 1]) if allowed > 0 else 0.0) / total if total > 0 else 0.0
        else:
            sample = np.sort(rng.choice(scores, size=n, replace=True))[::-1]
            thresholds_b[r] = _threshold_above(sample, allowed)
            fars_b[r] = float((sample >= threshold).mean())
    tail = (1.0 - confidence) / 2.0 * 100.0
    if bootstrap > 0:
        threshold_ci = (float(np.percentile(thresholds_b, tail)), float(np.percentile(thresholds_b, 100 - tail)))
        far_ci = (float(np.percentile(fars_b, tail)), float(np.percentile(fars_b, 100 - tail)))
    else:
        threshold_ci = (math.nan, math.nan)
        far_ci = (math.nan, math.nan)
    # For the FAR measured on *other* people (a population of the same size), both samples'
    # noise adds up: about sqrt(2) wider around the target (bench/calibration_honesty.py: this
    # held on 19 of 20 LFW half-splits per model, the plain interval on 18 and 15 of 20).
    if bootstrap > 0:
        far_prediction = (achieved - math.sqrt(2) * (achieved - far_ci[0]), achieved + math.sqrt(2) * (far_ci[1] - achieved))
    else:
        far_prediction = (math.nan, math.nan)
    resolvable = n * target_far >= min_pairs_above
    extra = {
        "target_far": target_far,
        "threshold": threshold,
        # None without a bootstrap: NaN is not JSON, and the calibration JSON must stay portable.
        "threshold_ci": list(threshold_ci) if bootstrap > 0 else None,
        "far_ci": list(far_ci) if bootstrap > 0 else None,
        "far_prediction": [max(far_prediction[0], 0.0), far_prediction[1]] if bootstrap > 0 else None,
        "confidence": confidence,
        "bootstrap": bootstrap,
        "bootstrap_unit": unit,
        "identities": n_ids,
        "resolvable": resolvable,
    }
    calibration = Calibration(
        model_id=model_id,
        model_sha256=model_sha256,
        source=source,
        fars=tuple(table_fars),
        thresholds=tuple(table_thresholds),
        impostor_pairs=n,
        name=name,
        extra=extra,
    )
    return CalibrationResult(
        calibration=calibration,
        target_far=target_far,
        threshold=threshold,
        achieved_far=achieved,
        threshold_ci=threshold_ci,
        far_ci=far_ci,
        confidence=confidence,
        bootstrap=bootstrap,
        n_impostors=n,
        n_identities=n_ids,
        resolvable=resolvable,
        extra=extra,
    )


def impostor_pairs(
    vectors: np.ndarray, identities: np.ndarray, max_pairs: int | None = None, seed: int = 0, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scores, i, j)`` of every pair of images of different people (i < j), or a seeded
    uniform sample of ``max_pairs`` of them when there are more."""
    vectors = np.asarray(vectors, dtype=np.float32)
    ids = np.asarray(identities)
    n = len(vectors)
    _, per_id = np.unique(ids, return_counts=True)
    total = n * (n - 1) // 2 - int((per_id * (per_id - 1) // 2).sum())
    if max_pairs is None or total <= max_pairs:
        scores, rows, cols = [], [], []
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            block = vectors[start:stop] @ vectors.T
            r = np.arange(start, stop)
            mask = (np.arange(n)[None, :] > r[:, None]) & (ids[r][:, None] != ids[None, :])
            ri, ci = np.nonzero(mask)
            scores.append(block[ri, ci])
            rows.append(ri + start)
            cols.append(ci)
        if not scores:
            return np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(scores), np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)
    i, j = sample_impostor_pairs(ids, max_pairs, seed)
    scores = np.einsum("ij,ij->i", vectors[i], vectors[j])
    return scores, i, j


def calibrate_from_embeddings(
    vectors: np.ndarray,
    identities: np.ndarray,
    target_far: float,
    model_id: str,
    model_sha256: str,
    source: str,
    *,
    usable: np.ndarray | None = None,
    max_impostors: int | None = 5_000_000,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    name: str = "candidate",
) -> CalibrationResult:
    """:func:`calibrate_scores` on the impostor pairs of a labelled set of templates.

    ``usable`` masks out images that gave no template (unreadable). Above ``max_impostors``
    pairs a seeded uniform sample is scored (unbiased for FAR, and the bootstrap still
    resamples people).
    """
    vectors = np.asarray(vectors)
    identities = np.asarray(identities)
    if usable is not None:
        vectors, identities = vectors[usable], identities[usable]
    _, codes = np.unique(identities, return_inverse=True)  # ints: the bootstrap sorts them fast
    scores, i, j = impostor_pairs(vectors, codes, max_impostors, seed)
    return calibrate_scores(
        scores,
        target_far,
        model_id,
        model_sha256,
        source,
        identities=(codes[i], codes[j]),
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        name=name,
    )


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
    run = mlflow_client.get_run(run_id)
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
        source=f"{run.info.artifact_uri}/{CALIBRATION_ARTIFACT_DIR}",
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
    except Exception as exc:  # the registry must never take verification down
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
