"""The web pages: static HTML and JavaScript that call the REST API with the user's API key.

The pages hold no logic of their own: every number they show comes from an /api/v1 route,
which calls the same service methods as the CLI.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = resources.files("facegate.web") / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/admin")


@router.get("/admin", response_class=HTMLResponse)
def admin_page() -> HTMLResponse:
    """Alerts, lockouts, drift and recent decisions of a gallery."""
    return HTMLResponse((STATIC / "admin.html").read_text(encoding="utf-8"))


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
