"""The API documentation: /docs (Swagger UI) and /redoc served from local files, and the
OpenAPI schema's security schemes and documented limits.

FastAPI's own pages load their scripts from a public CDN (blank offline, on an air-gapped
site) and start Swagger UI with an inline script (refused under ``script-src 'self'``); these
pages use only same-origin, external scripts. The asset files come from the
``fastapi-offline`` package; none of its code is used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
OWN_ASSETS = f"{ASSETS}/facegate"
API_KEY_SCHEME = "ApiKeyHeader"
SESSION_SCHEME = "OperatorSession"
# Routes anyone may call: no API key or operator session.
PUBLIC_PATHS = {"/api/v1/health", "/api/v1/ready", "/api/v1/auth/session", "/api/v1/auth/operator/login"}

# The docs pages' own policy (the app's default for responses without one forbids inline
# styles): scripts stay same-origin only; Swagger UI and ReDoc (styled-components) set inline
# styles, and ReDoc runs its search in a blob: worker.
DOCS_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; "
            "base-uri 'self'; form-action 'self'; object-src 'none'")

SWAGGER_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{title}} - API reference</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<link rel="icon" href="{ASSETS}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{OWN_ASSETS}/swagger-init.js"></script>
</body>
</html>
"""

REDOC_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{title}} - API reference (ReDoc)</title>
<link rel="icon" href="{ASSETS}/favicon.png">
</head>
<body>
<redoc spec-url="{{openapi_url}}"></redoc>
<script src="{ASSETS}/redoc.standalone.js"></script>
</body>
</html>
"""


def asset_dir() -> Path:
    """The ``static`` folder of the installed ``fastapi-offline`` package (found, not imported)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fastapi-offline package (the Swagger UI and ReDoc files) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def limits_text(max_upload_bytes: int, max_video_bytes: int) -> str:
    """The limits a caller runs into, in the words of the API description."""
    from facegate.gallery.paging import MAX_PAGE
    from facegate.workflows.accounts import MIN_PASSWORD, MIN_PHOTOS

    return (
        "\n\n**Authentication**: send an API key in the `X-API-Key` header (or `Authorization: Bearer`); "
        "operators signed in to the web admin send the `fg_session` cookie instead. "
        "Scopes: `admin`, `enroll`, `recognize`; a key may be bound to one gallery.\n\n"
        "**Limits**:\n"
        f"- each uploaded photo: at most {max_upload_bytes // (1024 * 1024)} MiB (`FACEGATE_MAX_UPLOAD_BYTES`), "
        "larger ones get 413;\n"
        f"- each uploaded video clip: at most {max_video_bytes // (1024 * 1024)} MiB (`FACEGATE_MAX_VIDEO_BYTES`);\n"
        f"- lists are paged: `limit` 1..{MAX_PAGE}, follow `next_cursor`;\n"
        f"- self-service accounts: password {MIN_PASSWORD}..1024 characters, at least {MIN_PHOTOS} photos;\n"
        "- identify: `top_k` 1..50; `far` / `fpir` in (0, 0.1];\n"
        "- enrollment from video: 1..20 frames; video jobs: `every` 1..30.\n\n"
        "Errors are `application/problem+json` with `code`, `detail` and `request_id`."
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the security schemes, and which operations need them."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes,
                         tags=app.openapi_tags, servers=app.servers)
    components = schema.setdefault("components", {})
    components["securitySchemes"] = {
        API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "X-API-Key",
                         "description": "An API key (fg_...); create one with `facegate key create` or POST /api/v1/keys."},
        SESSION_SCHEME: {"type": "apiKey", "in": "cookie", "name": "fg_session",
                         "description": "The session cookie of an operator signed in to the web admin."},
    }
    schema["security"] = [{API_KEY_SCHEME: []}, {SESSION_SCHEME: []}]
    for path, operations in schema.get("paths", {}).items():
        if path in PUBLIC_PATHS:
            for operation in operations.values():
                operation["security"] = []
    app.openapi_schema = schema
    return schema


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets; describe authentication and limits in the schema.

    Call after ``app.state.service`` is set (the limits come from its settings)."""
    settings = app.state.service.settings
    app.description = (app.description or "") + limits_text(settings.max_upload_bytes, settings.max_video_bytes)
    openapi_url = app.openapi_url or "/openapi.json"
    # The more specific mount first: Starlette takes the first route that matches.
    app.mount(OWN_ASSETS, StaticFiles(directory=Path(__file__).with_name("docs_static")), name="docs-own-assets")
    app.mount(ASSETS, StaticFiles(directory=asset_dir()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(SWAGGER_HTML.format(title=app.title), headers={"Content-Security-Policy": DOCS_CSP})

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return HTMLResponse(REDOC_HTML.format(title=app.title, openapi_url=openapi_url),
                            headers={"Content-Security-Policy": DOCS_CSP})

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
