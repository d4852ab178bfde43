"""The admin page in a real browser (Debian's chromium driven by Playwright) against a real
server: the key form, the gallery list, alerts acknowledged with a click, a lockout cleared,
and the drift report firing on darkened, blurred probes."""

from __future__ import annotations

import pytest

from tests.api_fixtures import ServerThread
from tests.browser import chromium
from tests.conftest import datasets_dir, degrade, enroll_lfw_people, verify_lfw_probes

WINDOW = 24


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A gallery with a reference window of normal probes, a recent one of degraded probes,
    an access alert and a locked identity."""
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.context import find_gallery
    from facegate.gallery.schemas import GallerySettings
    from facegate.gallery.service import SYSTEM, GalleryService, PhotoInput
    from facegate.workflows import Workflows

    lfw = datasets_dir("lfw")
    tmp = tmp_path_factory.mktemp("web")
    service = GalleryService(settings=Settings(data_dir=tmp / "data"), migrate=True)
    service.create_gallery("campus", settings=GallerySettings(lockout_failures=1), principal=SYSTEM)
    enrolled = enroll_lfw_people(service, "campus", WINDOW)
    verify_lfw_probes(service, "campus", enrolled)
    verify_lfw_probes(service, "campus", enrolled, transform=degrade)
    wf = Workflows(service)
    stranger = sorted((lfw / "Zhang_Ziyi").iterdir())[0]  # never enrolled: name order stops far earlier
    wf.access.check("campus", PhotoInput(stranger.name, stranger.read_bytes()), right="lab:enter",
                    principal=SYSTEM)
    with service.ctx.sessions.begin() as session:
        g = find_gallery(session, "campus", SYSTEM)
        wf.lockout.record_failure(session, g, "S-locked", "rejected")
    admin = service.create_api_key("admin", ["admin"], principal=SYSTEM).secret
    runner = ServerThread(create_app(service))
    runner.start()
    yield {"url": runner.base_url, "admin": admin, "service": service}
    runner.stop()
    service.close()


def test_admin_page_alerts_lockouts_and_drift(browser, site, tmp_path):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(site["url"] + "/")  # redirects to /admin
    assert page.url.endswith("/admin")
    # A wrong key: a clear message, no data.
    page.fill("#api-key", "fg_wrong")
    page.click("#key-form button")
    page.wait_for_function("() => document.querySelector('#status').className === 'error'")
    assert "key" in page.text_content("#status").lower()

    page.fill("#api-key", site["admin"])
    page.click("#key-form button")
    page.wait_for_selector("#gallery option", state="attached")
    page.click(".tabs a[href='#alerts-tab']")  # the sections are tabs now
    page.wait_for_selector("#alerts tbody tr")
    assert "campus" in page.text_content("#gallery")
    page.wait_for_function("() => document.querySelector('#calibration').textContent.includes('threshold')")
    assert page.text_content("#calibration").startswith("Calibration in use: default (verify threshold 0.28")
    kinds = page.locator("#alerts tbody tr td:nth-child(3)").all_text_contents()
    assert "access_denied" in kinds and "lockout" in kinds

    # Acknowledge the access alert with a click; with "unacknowledged only" it disappears.
    row = page.locator("#alerts tbody tr", has_text="access_denied")
    row.locator("button").click()
    page.wait_for_selector("#alerts tbody tr.acked")
    assert "ack: admin page" in page.locator("#alerts tbody tr", has_text="access_denied").text_content()
    page.check("#unacked-only")
    page.wait_for_function("() => ![...document.querySelectorAll('#alerts tbody tr')].some(r => r.textContent.includes('access_denied'))")

    # The locked identity, cleared with a click.
    page.click(".tabs a[href='#lockouts-tab']")
    page.wait_for_selector("#lockouts tbody tr")
    assert "S-locked" in page.text_content("#lockouts tbody")
    page.locator("#lockouts tbody tr", has_text="S-locked").locator("button").click()
    page.wait_for_function("() => !document.querySelector('#lockouts tbody').textContent.includes('S-locked')")

    # Drift: reference = the normal probes, recent = the darkened, blurred ones.
    page.click(".tabs a[href='#drift-tab']")
    page.fill("#reference-last", str(WINDOW))
    page.fill("#recent-last", str(WINDOW))
    page.click("#drift-form button")
    page.wait_for_function("() => document.querySelector('#drift-summary').textContent.startsWith('Drift in')")
    drifted = {
        r.locator("td").nth(0).text_content(): r.locator("td").nth(6).text_content()
        for r in page.locator("#drift tbody tr").all()
    }
    assert drifted.get("brightness") == "yes", drifted
    # The decisions table shows the calibration every decision used.
    page.click(".tabs a[href='#decisions-tab']")
    page.wait_for_selector("#decisions tbody tr")
    assert "default" in page.text_content("#decisions tbody") or "mlflow" in page.text_content("#decisions tbody")
    page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
    assert errors == []
    page.close()
