"""The web pages: static HTML and JavaScript that call the REST API.

The pages hold no logic of their own: every number they show comes from an /api/v1 route,
which calls the same service methods as the CLI. People sign in with an operator account
(session cookie + CSRF token); kiosks and door terminals may use an API key instead. No
page has inline script, so the Content-Security-Policy can forbid it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = resources.files("facegate.web") / "static"
router = APIRouter(include_in_schema=False)

# path -> (file, what the page is for); the index page lists them.
PAGES: dict[str, tuple[str, str]] = {
    "signin": ("signin.html", "Operator sign-in (admin, proctor, team lead)"),
    "kiosk": ("kiosk.html", "Exam check-in kiosk"),
    "enroll": ("enroll.html", "Self-service enrollment"),
    "login": ("login.html", "Face login"),
    "team": ("team.html", "Team access: members and rights"),
    "door": ("door.html", "Door: grant or refuse"),
    "live": ("live.html", "Live recognition"),
    "admin": ("admin.html", "Administration"),
}


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/admin")


PARTIALS = resources.files("facegate.web") / "partials"
_MARKER = re.compile(r"^ *<!--#([a-z_-]+)-->\n", re.M)


@lru_cache(maxsize=None)
def _render(file: str) -> str:
    """A page with the parts pages share filled in, each ``<!--#name-->`` line by
    ``partials/name.html``: the head (meta, style sheet, icon), the site header (the links to
    every page), the access bar (gallery and device key) and the liveness prompt over the
    camera. One copy of each; no template engine for a few fixed strings."""
    html = (STATIC / file).read_text(encoding="utf-8")
    return _MARKER.sub(lambda m: (PARTIALS / f"{m.group(1)}.html").read_text(encoding="utf-8"), html)


def _page(name: str) -> HTMLResponse:
    file, _ = PAGES[name]
    if not (STATIC / file).is_file():
        raise HTTPException(status_code=404, detail=f"page {name!r} is not installed")
    return HTMLResponse(_render(file), headers={"Cache-Control": "no-store"})


def _add_page(name: str) -> None:
    def page() -> HTMLResponse:
        return _page(name)

    page.__doc__ = PAGES[name][1]
    router.add_api_route("/" + name, page, methods=["GET"], response_class=HTMLResponse, name=f"page_{name}")


for _name in PAGES:
    _add_page(_name)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
