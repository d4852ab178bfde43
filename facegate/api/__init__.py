"""REST API (FastAPI) under /api/v1: a thin shell over the gallery service."""

from facegate.api.app import create_app

__all__ = ["create_app"]
