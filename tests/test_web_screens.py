"""The operator pages in a real browser (Debian's chromium driven by Playwright) against a real
server, under the page's Content-Security-Policy: sign in as an operator, walk every admin
section, add a team member with rights, and let the door grant that member with a fake camera
that shows their LFW photo. No page error and no console error (CSP violations show there).
Screenshots of each page at 1280 and 390 px wide go to tests/artifacts/screenshots/."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.api_fixtures import ServerThread
from tests.browser import fake_camera_args, launched, letterbox, playwright, write_y4m
from tests.conftest import enroll_lfw_people, package_photo

SHOTS = Path(__file__).parent / "artifacts" / "screenshots"
SIZES = {1280: (1280, 800), 390: (390, 844)}
PASSWORD = "correct horse battery"
# Chromium logs every failed fetch as a console error without its URL: failed responses are
# collected with their URL instead, and "not signed in" / a wrong password (401) is by design.
EXPECTED = ("Failed to load resource: the server responded with a status of",)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A gallery with package-photo subjects and three LFW members, an exam session, an access
    alert, an admin operator; and a y4m clip of one member's photo for the fake camera."""
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery import operators
    from facegate.gallery.operators import OperatorIn
    from facegate.gallery.service import SYSTEM, GalleryService, PhotoInput
    from facegate.workflows import Workflows
    from facegate.workflows.access import MemberIn
    from facegate.workflows.exam_schemas import ExamSessionIn

    tmp = tmp_path_factory.mktemp("screens")
    service = GalleryService(settings=Settings(data_dir=tmp / "data"), migrate=True)
    service.create_gallery("campus", principal=SYSTEM)
    wf = Workflows(service)
    for sid, photo in (("S-yao", "yaoming.jpg"), ("S-gdp", "gdp.jpg")):
        path = package_photo(photo)
        service.enroll("campus", sid, [PhotoInput(path.name, path.read_bytes())], principal=SYSTEM)
    people = enroll_lfw_people(service, "campus", 3)  # skips without ../shared
    member = people[0][0].parent.name
    wf.access.set_rights("campus", member, ["lab:enter"], principal=SYSTEM)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    wf.exams.create_session("campus", ExamSessionIn(code="EX1", course="Algebra", room="B12", starts_at=start,
                                                    ends_at=start + dt.timedelta(hours=2)), principal=SYSTEM)
    stranger = package_photo("players.jpg")
    wf.access.check("campus", PhotoInput(stranger.name, stranger.read_bytes()), right="lab:enter", principal=SYSTEM)
    wf.access.create_member("campus", MemberIn(external_id="M-old", display_name="Old member", rights=["lab:enter"]),
                            principal=SYSTEM)
    operators.create_operator(service.ctx, OperatorIn(username="alice", password=PASSWORD, role="admin",
                                                      display_name="Alice Admin"), SYSTEM)
    clip = tmp / "member.y4m"
    photo_clip(people[0][0], clip)
    runner = ServerThread(create_app(service))
    runner.start()
    yield {"url": runner.base_url, "service": service, "member": member, "clip": clip, "other": people[1][0].parent.name}
    runner.stop()
    service.close()


def photo_clip(photo: Path, path: Path, frames: int = 30) -> None:
    """A 640x480 y4m clip of one photo (scaled to 400x400 on a light background), for the fake camera."""
    import cv2

    face = letterbox(cv2.resize(cv2.imread(str(photo)), (400, 400)), 640, 480, fill=200)
    write_y4m([face] * frames, path)


@pytest.fixture(scope="module")
def pw():
    with playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(pw):
    with launched(pw) as b:
        yield b


def watched(context):
    """A new page whose page errors and console errors are collected."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" and not m.text.startswith(EXPECTED) else None)
    page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.request.method} {r.url}") if r.status >= 400 and r.status != 401 else None)
    return page, errors


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, (w, h) in SIZES.items():
        page.set_viewport_size({"width": w, "height": h})
        page.wait_for_timeout(150)
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{name} at {width} px scrolls sideways by {overflow} px"
    page.set_viewport_size({"width": 1280, "height": 800})


def sign_in(page, url: str) -> None:
    page.goto(url + "/signin")
    page.fill("#username", "alice")
    page.fill("#password", "wrong password")
    page.press("#password", "Enter")  # Enter submits
    page.wait_for_function("() => document.querySelector('#signin-status').className === 'error'")
    page.fill("#password", PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_selector("#signed-in:not(.hidden)")


def test_signin_and_admin_sections(browser, site):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page, errors = watched(context)
    page.goto(site["url"] + "/signin")
    shoot(page, "signin-form")
    sign_in(page, site["url"])
    assert "Alice Admin" in page.text_content("#whoami") and "admin" in page.text_content("#session-info")
    assert page.locator("#role-links a").first.get_attribute("href") == "/admin"
    assert page.get_attribute('.site-nav a[href="/signin"]', "aria-current") == "page"
    shoot(page, "signin")

    page.click('#role-links a[href="/admin"]')
    page.wait_for_selector("#galleries-table tbody tr")
    assert "Signed in as Alice Admin (admin)" in page.text_content("#who")
    assert page.is_hidden("#key-form")
    page.wait_for_function("() => document.querySelector('#calibration').textContent.includes('threshold')")
    assert page.locator("#settings-fields input").count() > 5
    assert page.locator("#setting-self_service").count() == 1
    shoot(page, "admin-galleries")

    # Subjects: search, open, templates with quality, delete through the confirm dialog.
    page.click(".tabs a[href='#subjects']")
    page.wait_for_selector("#subjects tbody tr")
    other = site["other"]
    page.fill("#subject-q", other.lower())
    page.press("#subject-q", "Enter")
    page.wait_for_function("() => document.querySelectorAll('#subjects tbody tr').length === 1")
    page.locator("#subjects tbody tr", has_text=other).locator("button").click()
    page.wait_for_selector("#faces tbody tr")
    shoot(page, "admin-subjects")
    page.click("#subject-delete")
    page.wait_for_selector("#confirm-dialog[open]")
    page.keyboard.press("Escape")  # Esc: nothing deleted
    page.wait_for_selector("#confirm-dialog:not([open])", state="attached")
    page.wait_for_function("() => document.querySelector('#status').textContent === 'nothing deleted'")
    page.click("#subject-delete")
    page.click("#confirm-yes")
    page.wait_for_function(f"() => document.querySelector('#status').textContent.startsWith('deleted {other}')")
    page.wait_for_function(f"() => !document.querySelector('#subjects tbody').textContent.includes('{other}')")

    # Exams: the session, its attendance, the CSV downloaded with the session's credentials.
    page.click(".tabs a[href='#exams']")
    page.locator("#exams tbody tr", has_text="EX1").locator("button").click()
    page.wait_for_selector("#attendance tbody tr")
    with page.expect_download() as download:
        page.click("#attendance-csv")
    csv = Path(download.value.path()).read_text()
    assert csv.startswith("student_id") and "S-yao" in csv
    shoot(page, "admin-exams")

    # Alerts (the stranger at the door), acknowledged.
    page.click(".tabs a[href='#alerts-tab']")
    page.locator("#alerts tbody tr", has_text="access_denied").locator("button").click()
    page.wait_for_selector("#alerts tbody tr.acked")
    assert "ack: alice" in page.text_content("#alerts tbody")
    shoot(page, "admin-alerts")
    for tab in ("lockouts-tab", "decisions-tab"):
        page.click(f".tabs a[href='#{tab}']")
        page.wait_for_selector(f"#{tab.replace('-tab', '')} tbody tr")
        shoot(page, f"admin-{tab.replace('-tab', '')}")

    # API keys: the secret shown once in a dialog, then the key revoked.
    page.click(".tabs a[href='#keys']")
    page.fill("#key-name", "door-2")
    page.press("#key-name", "Enter")
    page.wait_for_selector("#secret-dialog[open]")
    secret = page.text_content("#new-secret")
    assert secret.startswith("fg_")
    page.click("#copy-secret")
    page.wait_for_function("() => document.querySelector('#copy-status').textContent !== ''")
    shoot(page, "admin-key-secret")
    page.keyboard.press("Escape")
    page.wait_for_selector("#secret-dialog:not([open])", state="attached")
    assert page.text_content("#new-secret") == ""  # shown once
    row = page.locator("#keys-table tbody tr", has_text="door-2")
    assert secret not in row.text_content()
    row.locator("button").click()
    page.click("#confirm-yes")
    page.wait_for_function("() => [...document.querySelectorAll('#keys-table tbody tr')].some(r => r.textContent.includes('door-2') && r.textContent.includes('revoked'))")
    shoot(page, "admin-keys")

    # Operators: a team lead created.
    page.click(".tabs a[href='#operators']")
    page.fill("#op-username", "bob")
    page.fill("#op-display", "Bob Lead")
    page.fill("#op-password", PASSWORD)
    page.select_option("#op-role", "lead")
    page.click("#operator-create button[type=submit]")
    page.wait_for_selector("#operators-table tbody tr:has-text('bob')")
    shoot(page, "admin-operators")

    page.click(".tabs a[href='#models']")
    page.wait_for_selector("#models-table tbody tr:has-text('arcface_mbf')")
    assert "campus" in page.locator("#models-table tbody tr", has_text="arcface_mbf").text_content()
    shoot(page, "admin-models")

    # Calibration: the canvas drawn, with the gallery's threshold marked.
    page.click(".tabs a[href='#calibration-tab']")
    page.wait_for_selector("#roc-canvas[data-drawn='true']", state="attached")
    threshold = page.get_attribute("#roc-canvas", "data-threshold")
    assert threshold in page.text_content("#calibration-summary")
    assert page.evaluate("() => { const c = document.querySelector('#roc-canvas'); const d = c.getContext('2d')"
                         ".getImageData(0, 0, c.width, c.height).data; let red = 0;"
                         " for (let i = 0; i < d.length; i += 4) if (d[i] > 150 && d[i+1] < 80 && d[i+2] < 80) red++; return red; }") > 50
    shoot(page, "admin-calibration")

    # Drift on a new, empty gallery: "not enough data", never "no drift".
    page.click(".tabs a[href='#galleries']")
    page.fill("#new-gallery-name", "empty")
    page.press("#new-gallery-name", "Enter")
    page.wait_for_function("() => document.querySelector('#gallery').value === 'empty'")
    page.click(".tabs a[href='#drift-tab']")
    page.wait_for_function("() => document.querySelector('#drift-summary').textContent !== ''")
    summary = page.text_content("#drift-summary")
    assert summary.startswith("Not enough data") and "no drift" not in summary.lower()
    shoot(page, "admin-drift")
    assert errors == []
    context.close()


def test_team_adds_a_member_and_the_door_grants(pw, site):
    with launched(pw, fake_camera_args(site["clip"])) as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.grant_permissions(["camera"], origin=site["url"])
        page, errors = watched(context)
        sign_in(page, site["url"])

        page.goto(site["url"] + "/team")
        page.wait_for_selector("#members tbody tr")
        page.fill("#member-id", "M-new")
        page.fill("#member-name", "New Member")
        page.fill("#member-rights", "lab:enter, office:*")
        page.press("#member-rights", "Enter")
        page.wait_for_selector("#members tbody tr:has-text('M-new')")
        row = page.locator("#members tbody tr", has_text="M-new")
        assert "lab:enter" in row.text_content() and "office:*" in row.text_content()
        row.locator("input").fill("lab:enter")
        row.locator("button").click()
        page.wait_for_function("() => document.querySelector('#team-status').textContent.startsWith('rights of M-new saved')")
        assert "office:*" not in page.locator("#members tbody tr", has_text="M-new").text_content()
        shoot(page, "team")

        # The door: the fake camera shows the member; one good face in view checks automatically.
        page.goto(site["url"] + "/door")
        page.wait_for_selector("#door-gallery option", state="attached")
        page.click("#door-start")
        page.wait_for_selector("#verdict.granted", timeout=60000)
        assert page.text_content("#verdict-word") == "GRANTED"
        assert site["member"] in page.text_content("#verdict-who") and "lab:enter" in page.text_content("#verdict-right")
        shoot(page, "door")
        # A right the member does not hold: denied, with the reason.
        page.fill("#door-right", "vault:open")
        page.click("#door-check")
        page.wait_for_selector("#verdict.denied", timeout=60000)
        assert page.text_content("#verdict-word") == "DENIED" and page.text_content("#verdict-reason")
        shoot(page, "door-denied")
        assert errors == []
        context.close()
