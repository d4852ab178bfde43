"""The kiosk with the gallery's liveness active, in a real chromium against a real server with
the real models: the page asks for a challenge once one good face is in view, shows its
instruction large with a countdown, records about 10 frames a second for the challenge's
time and sends them with the nonce. The live LivePortrait clip checks the student in (green,
liveness passed); a still picture of the same face is refused (red, liveness failed) and
raises a ``liveness_failed`` alert. Screenshots at 1280 and 390 px go to tests/artifacts/.

Deterministic on purpose: chromium's fake camera loops its y4m from the start when the page
opens the camera, so the time the recording starts in the clip is not known. The y4m is the
slice of d0 around its blink (1.6-3.12 s: the blink is at 2.56 s), played at half speed (each
frame twice, so the eyes stay shut for ~0.25 s, more than two frames at 10 fps) and looped
every ~3 s: any 4 s recording holds a whole blink, and the 5 baseline frames never sit all
inside it. The challenge's actions are forced to ``["blink"]`` through a monkeypatch of the
random draw of facegate/gallery/liveness.py in this process (the server runs in a thread of
it); production draws at random, and the patch ends with the test.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest

from tests.api_fixtures import ServerThread
from tests.browser import CHROMIUM, CHROMIUM_ARGS, fake_camera_args, letterbox, write_y4m
from tests.conftest import datasets_dir
from tests.test_web_pages import WAIT, Tab, service_alerts

CLIP = "d0.mp4"
BLINK_SLICE = (1.6, 3.12)  # seconds of d0: frontal, still head, one blink at 2.56 s
SLOW = 2  # each frame written twice: the blink lasts ~0.3 s on the fake camera


def looped_y4m(out: Path, frames: list[np.ndarray], repeat: int = 1) -> Path:
    """BGR frames letterboxed to 640x480 at 25 fps, each ``repeat`` times (chromium loops it)."""
    return write_y4m((letterbox(bgr) for bgr in frames for _ in range(repeat)), out)


def clip_frames(clip: Path, start: float = 0.0, end: float | None = None) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out, index = [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        t = index / fps
        index += 1
        if t >= start and (end is None or t < end):
            out.append(bgr)
    cap.release()
    return out


@pytest.fixture(scope="module")
def cameras(tmp_path_factory):
    """Two y4m cameras: the live blink loop, and a still picture (the clip's first frame)."""
    pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium (make test installs it)")
    clip = datasets_dir("videos") / "LivePortrait" / CLIP
    tmp = tmp_path_factory.mktemp("liveness-camera")
    first = clip_frames(clip, 0.0, 0.05)[0]
    live = looped_y4m(tmp / "live.y4m", clip_frames(clip, *BLINK_SLICE), repeat=SLOW)
    still = looped_y4m(tmp / "still.y4m", [first] * 50)
    return {"live": live, "still": still, "first": first}


@pytest.fixture(scope="module")
def site(tmp_path_factory, cameras):
    """Gallery campus with liveness active, student s1001 enrolled from the clip's first frame,
    exam CS101 open now, and a kiosk (proctor) key."""
    import cv2

    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.schemas import GallerySettings
    from facegate.gallery.service import SYSTEM, GalleryService, PhotoInput
    from facegate.workflows import Workflows
    from facegate.workflows.exam_schemas import ExamSessionIn

    tmp = tmp_path_factory.mktemp("liveness-pages")
    service = GalleryService(settings=Settings(data_dir=tmp / "data"), migrate=True)
    service.create_gallery("campus", settings=GallerySettings(liveness="active"), principal=SYSTEM)
    kiosk = service.create_api_key("kiosk", ["proctor"], "campus", principal=SYSTEM).secret
    ok, jpeg = cv2.imencode(".jpg", cameras["first"])
    report = service.enroll("campus", "s1001", [PhotoInput("d0-first.jpg", jpeg.tobytes())], create_subject=True,
                            display_name="Dana Example", principal=SYSTEM)
    assert ok and report.accepted == 1
    now = dt.datetime.now(dt.timezone.utc)
    Workflows(service).exams.create_session("campus", ExamSessionIn(
        code="CS101", course="Algorithms", room="Hall A", starts_at=now - dt.timedelta(minutes=5),
        ends_at=now + dt.timedelta(hours=2), students=["s1001"]), principal=SYSTEM)
    # A self-service gallery with liveness active, where Dana has an account (face login).
    from facegate.workflows.accounts import RegistrationIn

    service.create_gallery("portal", settings=GallerySettings(liveness="active", self_service=True), principal=SYSTEM)
    frames = clip_frames(datasets_dir("videos") / "LivePortrait" / CLIP, 0.0, 1.0)
    photos = [PhotoInput(f"p{i}.jpg", cv2.imencode(".jpg", frames[i])[1].tobytes()) for i in (0, 10, 20)]
    Workflows(service).accounts.register("portal", RegistrationIn(username="dana", password="correct horse battery",
                                                                  consent=True), photos, principal=SYSTEM)
    runner = ServerThread(create_app(service))
    runner.start()
    yield {"url": runner.base_url, "kiosk": kiosk, "service": service}
    runner.stop()
    service.close()


@pytest.fixture
def blink_only(monkeypatch):
    """Every challenge the server issues during the test asks for one blink (test only)."""
    from facegate.gallery import liveness as lv

    monkeypatch.setattr(lv, "draw_actions", lambda *args, **kwargs: ["blink"])


def _kiosk_check(playwright, camera: Path, site, shots: str | None = None):
    """Open the kiosk with this camera, check s1001 in; returns (tab, page, browser) once the
    verdict shows. With ``shots``, screenshots of the instruction while it is on screen (only in
    the run meant to fail: resizing and capturing the page stalls its frames for a moment)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                         args=[*CHROMIUM_ARGS, *fake_camera_args(camera)])
    context = browser.new_context(permissions=["camera"])
    tab = Tab(context, site)
    page = tab.open("/kiosk", site["kiosk"])
    page.wait_for_selector("#session option", state="attached", timeout=WAIT)
    page.fill("#student-id", "s1001")
    page.press("#student-id", "Enter")
    page.wait_for_selector("#prompt:not([hidden])", timeout=WAIT)
    assert page.text_content("#prompt [data-text]") == "Blink once"
    assert page.text_content("#prompt [data-step]") == "Step 1 of 1"
    assert page.text_content("#prompt [data-left]").endswith(" s")
    if shots:
        tab.shots(shots)
    page.wait_for_selector("#result:not([hidden])", timeout=WAIT)
    assert page.is_hidden("#prompt")
    return tab, page, browser


def test_kiosk_active_liveness_live_clip_and_still_picture(site, cameras, blink_only):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        # a. The live clip: the instruction shows, the recording answers it, s1001 is admitted.
        tab, page, browser = _kiosk_check(p, cameras["live"], site)
        classes = page.get_attribute("#result", "class").split()
        assert "admitted" in classes, page.text_content("#result")
        assert page.text_content("#result-title") == "Admitted"
        assert "Dana Example" in page.text_content("#result-who")
        live_line = page.text_content("#result-liveness")
        assert live_line.startswith("liveness passed (active: blink at "), live_line
        assert page.is_visible("#result-liveness")
        tab.shots("kiosk-liveness-passed")
        expect(page.locator("#count")).to_have_text("Present 1 / 1", timeout=WAIT)
        assert tab.errors == [], tab.errors
        browser.close()

        # b. A still picture of the same face: the blink never comes; refused, and alerted.
        tab, page, browser = _kiosk_check(p, cameras["still"], site, shots="kiosk-liveness-instruction")
        assert "refused" in page.get_attribute("#result", "class").split(), page.text_content("#result")
        assert page.text_content("#result-title") == "Not admitted"
        assert "liveness_failed" in page.text_content("#result-message")
        still_line = page.text_content("#result-liveness")
        assert still_line.startswith("liveness failed (active): "), still_line
        assert "blink not seen" in still_line or "still image" in still_line, still_line
        page.wait_for_selector("#alerts-list li:has-text('liveness_failed')", timeout=WAIT)
        tab.shots("kiosk-liveness-failed")
        assert tab.errors == [], tab.errors
        browser.close()

    from facegate.gallery.service import SYSTEM

    alerts = [a for a in service_alerts(site["service"]) if a.kind == "liveness_failed"]
    assert len(alerts) == 1 and alerts[0].subject == "s1001", alerts
    page_ = site["service"].list_decisions("campus", kind="liveness", principal=SYSTEM)
    items = page_.items if hasattr(page_, "items") else page_["items"]
    outcomes = sorted(getattr(d, "outcome", None) or d["outcome"] for d in items)
    assert outcomes == ["failed", "passed"], outcomes


def test_face_login_with_liveness_by_someone_not_signed_in(site, cameras, blink_only):
    """Self-service face login with liveness active, no key and no operator: the page records
    the challenge and Dana is signed in (the signed-in view with her name)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=[*CHROMIUM_ARGS, *fake_camera_args(cameras["live"])])
        tab = Tab(browser.new_context(permissions=["camera"]), site)
        page = tab.page
        page.goto(site["url"] + "/login")
        page.fill("#gallery", "portal")
        page.press("#gallery", "Enter")
        page.click("#start")
        page.wait_for_selector("#prompt:not([hidden])", timeout=WAIT)
        assert page.text_content("#prompt [data-text]") == "Blink once"
        page.wait_for_selector("#signed-in:not([hidden])", timeout=WAIT)
        assert page.text_content("#me-username") == "dana"
        assert tab.errors == [], tab.errors
        browser.close()
