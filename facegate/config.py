"""Settings read from the environment (prefix ``FACEGATE_``) with safe embedded defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob FaceGate has; one instance per process (see :func:`get_settings`)."""

    model_config = SettingsConfigDict(env_prefix="FACEGATE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    # Image input limits: refuse before decoding, so a bomb never allocates.
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    # onnxruntime threads: explicit, the target machine has 2 cores.
    ort_intra_threads: int = 2
    ort_inter_threads: int = 1
    # Detection.
    detector: str = "scrfd"
    det_score_threshold: float = 0.5
    det_max_side: int = 640
    min_face_size: int = 20
    # Recognition.
    recognition_model: str = "arcface"
    # Storage: empty means a SQLite file under data_dir; a postgresql:// URL uses pgvector.
    database_url: str = ""
    # Identification switches from exact search to the approximate index at this size.
    ann_min_templates: int = 20_000
    # Build a missing approximate index on a background thread and answer exactly meanwhile
    # (a 100k-template usearch build takes minutes on 2 cores); False builds it in the search.
    ann_build_in_background: bool = True
    # HTTP.
    max_upload_bytes: int = 25 * 1024 * 1024
    # Signing key of face-login session tokens; empty means a random key kept in
    # data_dir/secret_key (created on first use, mode 0600).
    secret_key: str = ""
    session_token_minutes: float = 60.0
    # Background jobs beside the API server (webhook delivery, missed re-verifications).
    background_worker: bool = True
    # The automatic response to drift (facegate/monitoring/auto.py): how often every gallery is
    # checked (0 turns it off) and how long a gallery is left alone after an action.
    auto_respond_interval_s: float = 3600.0
    auto_respond_cooldown_s: float = 86400.0
    # Prometheus metrics at GET /metrics (no auth, for the scraper): turn off where the port is public.
    metrics_enabled: bool = True
    # Model operations: empty means sqlite:///<data_dir>/mlflow/mlflow.db, artifacts beside it.
    mlflow_tracking_uri: str = ""
    # How long the service keeps the registry's production calibration before asking again.
    calibration_cache_ttl_s: float = 5.0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
