"""Settings read from the environment (prefix ``FACEGATE_``) with safe embedded defaults.

Every value is checked when the settings are loaded, so a typo in the environment stops the
process at start-up with the variable's name (:class:`~facegate.errors.ConfigurationError`)
instead of failing on some later request.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from facegate.errors import ConfigurationError

ENV_PREFIX = "FACEGATE_"

# What make_engine accepts (facegate/storage/db.py turns postgres(ql):// into psycopg 3).
_DATABASE_URL = re.compile(r"^(sqlite:///.+|(postgresql|postgresql\+psycopg|postgres)://\S+)$")
# MLflow stores FaceGate can talk to: a SQL store, a file store, a tracking server, Databricks.
_MLFLOW_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file", "http", "https", "databricks", "databricks-uc", "uc")
_URI_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9.-]*)(\+[A-Za-z0-9_]+)?:(?P<rest>.*)$")
# Short names of onnxruntime execution providers (FACEGATE_ORT_PROVIDERS); a full name ending in
# "ExecutionProvider" is accepted too.
ORT_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
}


class Settings(BaseSettings):
    """Every knob FaceGate has; one instance per process (see :func:`get_settings`)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    # Image input limits: refuse before decoding, so a bomb never allocates.
    max_image_bytes: int = Field(20 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(50_000_000, gt=0)
    max_image_decode_bytes: int = Field(256 * 1024 * 1024, gt=0)  # peak memory one decode may take
    max_concurrent_decodes: int = Field(2, ge=1, le=64)  # image decodes at once per process
    # onnxruntime threads: explicit, the target machine has 2 cores. Inter-op threads run
    # independent branches of a graph at once (parallel execution mode when above 1).
    ort_intra_threads: int = Field(2, ge=1)
    ort_inter_threads: int = Field(1, ge=1)
    # onnxruntime execution providers: "auto" (CUDA when onnxruntime-gpu is installed and lists it,
    # CPU otherwise), "cpu", "cuda", or names in order of preference ("tensorrt,cuda,cpu"). A named
    # provider that cannot start is an error, never a silent fall-back to CPU.
    ort_providers: str = "auto"
    # On the CPU provider, PRelu is rewritten as Relu and channel scales, which onnxruntime runs in
    # its blocked layout (facegate/models/graph_rewrite.py): same outputs within 3e-6, ArcFace
    # 1.35x faster (bench/prelu_rewrite.py). Off: the graph exactly as shipped.
    ort_fast_prelu: bool = True
    # Detection. Each detector's default score threshold (a caller may pass its own): SCRFD's
    # score is a probability. dlib HOG's score is an SVM margin on another scale (0 is dlib's own
    # default; the faces of the test photos score 0.5 to 2.4), so it has its own setting, not a
    # mapping.
    # SCRFD's threshold and edge margin were chosen with bench/detection_threshold.py (real
    # photos: the 43 faces annotated in dlib_faces, those faces cut by a crop through them, the
    # 7 faces of groups/deepface/selfie-many-people.jpg, and 21 photos without a human face: 20
    # of skimage.data and dlib's dogs.jpg). A grey margin of 5% per side finds faces cut by the
    # frame edge: at 0.65, 166/172 (was 156) of the faces cut 25% and 49/172 (was 34) of those
    # cut through the middle, 5 of the 7 selfie faces (was 4), all 43 annotated faces as before,
    # no detection on the 21 non-face photos, the same LFW pairsDevTest EER (0.8%); detection
    # takes ~15% longer. 0.65 stays the threshold: non-faces (a motorcycle headlight, a dog)
    # score up to 0.62 at this margin and moved by up to 0.045 when the margin changed (0.665 at
    # 10%), so 0.60 fires on 1 of the 21 photos (2 without the margin) and 0.62-0.64 (one more
    # selfie face: the selfie-taker scores 0.649) would leave less margin than that jitter.
    detector: str = "scrfd"
    det_score_threshold: float = Field(0.65, ge=0.0, le=1.0)
    det_dlib_score_threshold: float = Field(0.0, allow_inf_nan=False)
    det_max_side: int = Field(640, gt=0)
    # SCRFD: a grey margin of this fraction of the width and height added on every side before
    # detection, so a face cut by the frame edge is found (0 turns it off).
    det_edge_padding: float = Field(0.05, ge=0.0, le=0.5)
    min_face_size: int = Field(20, ge=0)
    # Recognition.
    recognition_model: str = "arcface"
    # Faces embedded per run of an onnxruntime recognition network. 0: automatic, all of a photo's
    # faces in one batch (up to 32) on a GPU provider, one face per run on the CPU, where a batch
    # of 4 faces took ~7% and one of 16 ~17% more CPU time than the same faces one by one
    # (bench/README.md, engine). Templates are the same either way (to 1e-4, tests/test_batching.py).
    embed_batch_size: int = Field(0, ge=0, le=1024)
    # Storage: empty means a SQLite file under data_dir; a postgresql:// URL uses pgvector.
    database_url: str = ""
    # Identification switches from exact search to the approximate index at this size.
    ann_min_templates: int = Field(10_000, ge=0)
    # Build a missing approximate index on a background thread and answer exactly meanwhile
    # (a million-template index takes a few minutes on 2 cores); False builds it in the search.
    ann_build_in_background: bool = True
    # OpenMP threads for an index build; searches run one thread each. 1 by default: with the
    # other core busy (serving), 2 threads made a 10k build 5x slower (2.7 s -> 14.7 s), each
    # k-means step waiting for the descheduled thread.
    ann_build_threads: int = Field(1, ge=1, le=256)
    # Where big galleries are searched on PostgreSQL: "memory", the in-process index every worker
    # keeps current by the gallery version (as beside SQLite), or "pgvector", its HNSW index in SQL.
    search_index: Literal["memory", "pgvector"] = "memory"
    # HTTP.
    max_upload_bytes: int = Field(25 * 1024 * 1024, gt=0)
    # An uploaded video clip (enrollment from a clip, a recognition job) is streamed to disk up to this size.
    max_video_bytes: int = Field(200 * 1024 * 1024, gt=0)
    # Signing key of face-login session tokens; empty means a random key kept in
    # data_dir/secret_key (created on first use, mode 0600).
    secret_key: str = ""
    # Biometric data sealed at rest with AES-256-GCM (storage/sealing.py): the key, base64 of 32
    # bytes; empty: a key created once in the data folder (template_key). Keep a copy elsewhere.
    encrypt_templates: bool = True
    template_key: str = ""
    session_token_minutes: float = Field(60.0, gt=0, allow_inf_nan=False)
    # How long an operator (admin, proctor, team lead) stays signed in to the admin pages.
    operator_session_minutes: float = Field(480.0, gt=0, allow_inf_nan=False)
    # Rate limits ("N/second|minute|hour", several joined by ";"), per server process, answered
    # with 429 and Retry-After: failed authentications per client address, and the recognition
    # routes (detect, verify, identify, check-in, login, access) per API key or client address.
    rate_limit_enabled: bool = True
    # A request body must keep arriving: at most this many seconds between two chunks (408 after).
    body_timeout_s: float = Field(30.0, ge=0, le=3600, allow_inf_nan=False)
    rate_limit_auth_failures: str = "30/minute"
    rate_limit_recognition: str = "100/second;3000/minute"
    # Background jobs beside the API server (webhook delivery, missed re-verifications).
    background_worker: bool = True
    # Hosts or networks (comma-separated: "hooks.internal, 10.0.0.0/8, 127.0.0.1") the server may
    # send webhooks to although they are loopback, private or reserved; none by default.
    outbound_allowed_hosts: str = ""
    # The automatic response to drift (facegate/monitoring/auto.py): how often every gallery is
    # checked (0 turns it off) and how long a gallery is left alone after an action.
    auto_respond_interval_s: float = Field(3600.0, ge=0, allow_inf_nan=False)
    auto_respond_cooldown_s: float = Field(86400.0, ge=0, allow_inf_nan=False)
    # Prometheus metrics at GET /metrics (no auth, for the scraper): turn off where the port is public.
    metrics_enabled: bool = True
    # Without a token, /metrics answers clients on this machine only; with one, any client that
    # sends it as "Authorization: Bearer <token>".
    metrics_token: str = ""
    # Model operations: empty means sqlite:///<data_dir>/mlflow/mlflow.db, artifacts beside it.
    mlflow_tracking_uri: str = ""
    # How long the service keeps the registry's production calibration before asking again.
    calibration_cache_ttl_s: float = Field(5.0, ge=0, allow_inf_nan=False)

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a folder")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not _DATABASE_URL.match(value):
            raise ValueError(
                "must be empty (a SQLite file under the data folder), sqlite:///<path> or "
                "postgresql[+psycopg]://user:password@host/database"
            )
        return value

    @field_validator("rate_limit_auth_failures", "rate_limit_recognition")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError('must be rates such as "30/minute" or "20/second;1200/minute"') from None
        return value

    @field_validator("ort_providers")
    @classmethod
    def _ort_providers(cls, value: str) -> str:
        ort_provider_names(value)  # raises ValueError with the reason
        return value

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _mlflow_uri(cls, value: str) -> str:
        if value and not _plausible_mlflow_uri(value):
            raise ValueError(
                "must be empty (a SQLite store under the data folder) or a URI such as "
                "sqlite:///<path>, file:///<path>, http(s)://host:port or postgresql://..."
            )
        return value


def ort_provider_names(value: str) -> list[str] | None:
    """The onnxruntime providers a FACEGATE_ORT_PROVIDERS value names, in order of preference,
    or None for ``auto`` (which ones are installed is checked when a session opens)."""
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise ValueError("must be auto, cpu, cuda or a comma-separated list of providers, without empty names")
    if any(item.lower() == "auto" for item in items):
        if len(items) > 1:
            raise ValueError("auto chooses the providers itself and cannot be combined with others")
        return None
    names: list[str] = []
    for item in items:
        name = ORT_PROVIDER_ALIASES.get(item.lower()) or (item if item.endswith("ExecutionProvider") else None)
        if name is None:
            raise ValueError(
                f"unknown provider {item!r}; use auto, {', '.join(ORT_PROVIDER_ALIASES)} "
                "or an onnxruntime name such as CUDAExecutionProvider"
            )
        if name in names:
            raise ValueError(f"{name} is named twice")
        names.append(name)
    return names


def _plausible_mlflow_uri(value: str) -> bool:
    if value.lower() in ("databricks", "databricks-uc", "uc"):
        return True
    match = _URI_SCHEME.match(value)
    if match is None or match["scheme"].lower() not in _MLFLOW_SCHEMES:
        return False
    scheme, rest = match["scheme"].lower(), match["rest"]
    if scheme == "sqlite":
        return rest.startswith("///") and len(rest) > 3
    if scheme in ("http", "https", "postgresql", "mysql", "mssql"):
        return rest.startswith("//") and len(rest) > 2 and not any(c.isspace() for c in rest)
    return scheme.startswith("databricks") or scheme == "uc" or len(rest) > 0


def env_name(field: str) -> str:
    """The environment variable that sets a field: ``ort_intra_threads`` -> ``FACEGATE_ORT_INTRA_THREADS``."""
    return f"{ENV_PREFIX}{field.upper()}"


def _describe(exc: ValidationError) -> str:
    """One ``VARIABLE: reason`` per bad value (values are not repeated: they may be secrets)."""
    problems = []
    for err in exc.errors():
        name = env_name(str(err["loc"][0])) if err["loc"] else ENV_PREFIX + "*"
        ctx: dict[str, Any] = err.get("ctx") or {}
        reason = str(ctx["error"]) if err["type"] == "value_error" and "error" in ctx else err["msg"]
        problems.append(f"{name}: {reason}")
    return "invalid settings: " + "; ".join(problems)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (``overrides`` win), or a :class:`ConfigurationError`
    naming each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
