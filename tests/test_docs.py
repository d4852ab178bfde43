"""/docs and /redoc work offline: same-origin assets only, no inline script (the pages run
under ``script-src 'self'``), and the OpenAPI schema documents every operation, the security
schemes and the limits."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient

from tests.api_fixtures import ServerThread
from tests.browser import chromium

SCREENSHOTS = Path(__file__).parent / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    tmp = tmp_path_factory.mktemp("docs")
    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'docs.db'}", background_worker=False,
                        max_upload_bytes=3 * 1024 * 1024)
    service = GalleryService(settings, migrate=True)
    yield create_app(service)
    service.close()


@pytest.fixture(scope="module")
def http(app):
    with TestClient(app) as client:
        yield client


def _references(html: str) -> list[str]:
    return re.findall(r'(?:src|href|spec-url)="([^"]+)"', html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_same_origin_external_scripts(http, page):
    response = http.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    refs = _references(html)
    assert refs, html
    for ref in refs:
        assert not urlparse(ref).netloc and ref.startswith("/"), f"{page} loads {ref} from another origin"
    assert "http://" not in html and "https://" not in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts), scripts
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy
    for ref in refs:
        asset = http.get(ref)
        assert asset.status_code == 200, ref
        if ref.endswith(".js"):
            assert "javascript" in asset.headers["content-type"] and len(asset.content) > 100
    if page == "/docs":
        assert any(r.endswith("swagger-ui-bundle.js") for r in refs)
        assert "SwaggerUIBundle" in http.get("/docs-assets/facegate/swagger-init.js").text
    else:
        assert "/openapi.json" in refs and any(r.endswith("redoc.standalone.js") for r in refs)


def test_every_operation_is_described_and_secured(app):
    schema = app.openapi()
    missing = [f"{m.upper()} {p}" for p, ops in schema["paths"].items() for m, op in ops.items()
               if not (op.get("description") or "").strip()]
    assert not missing, missing
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {**schemes["ApiKeyHeader"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["OperatorSession"]["in"] == "cookie" and schemes["OperatorSession"]["name"] == "fg_session"
    assert schema["paths"]["/api/v1/health"]["get"]["security"] == []
    assert "3 MiB" in schema["info"]["description"] and "10..1024" in schema["info"]["description"]


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(app):
    runner = ServerThread(app)
    runner.start()
    yield runner.base_url
    runner.stop()


@pytest.mark.parametrize("page, ready", [("/docs", ".opblock"), ("/redoc", "[data-section-id^='operation/']")])
def test_docs_render_with_the_network_offline(browser, server, page, ready):
    """Every request to another host is refused: the page still renders the operations."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []

    def only_local(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append((route.request.resource_type, route.request.url))
            route.abort()

    try:
        tab = context.new_page()
        errors: list[str] = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.route("**/*", only_local)
        tab.goto(server + page)
        tab.wait_for_selector(ready, state="attached", timeout=30_000)
        assert tab.locator(ready).count() >= 40
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SCREENSHOTS / f"{page.strip('/')}-1280.png"))
        refused = [e for e in errors if "Content Security Policy" in e and "Loading the image" not in e]
        assert not refused, refused
    finally:
        context.close()
    # ReDoc's footer links its logo from its CDN: an image (refused by the policy), nothing the page needs.
    assert not [b for b in blocked if b[0] != "image"], f"{page} tried to reach {blocked}"
