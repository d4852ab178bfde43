"""Monitoring: PSI / KS on synthetic samples, drift on real photos (LFW) made darker and
blurred, the automatic response (template refresh with its cap and undo, recalibration in the
MLflow registry), and the metrics and drift routes over a real HTTP server.

The real-photo part builds one gallery per module: 25 LFW people enrolled from their first
photo, then verify calls in three windows of 50:
  R: photos 2 and 3 of each person (reference),
  U: photos 4 and 5 (same conditions: drift must stay quiet against R),
  S: the U photos darkened to 30 % and blurred (sigma 2.5): drift must fire against U.
"""

from __future__ import annotations

import csv
import json
import time
from collections import defaultdict

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import select

from facegate.errors import ConflictError, FaceGateError
from facegate.modelops.registry import RegistryCalibrations
from facegate.monitoring.drift import (
    DecisionSample,
    DriftWindows,
    compare_windows,
    gallery_drift,
    ks_test,
    population_stability_index,
    psi_bins,
    psi_noise_limit,
    rate_test,
)
from facegate.monitoring.metrics import FaceGateMetrics
from facegate.monitoring.response import respond as respond_to_drift
from facegate.monitoring.response import revert_action
from facegate.security import SYSTEM
from tests.api_fixtures import fresh_database_url, pg_server  # noqa: F401 - pg_server is used by name
from tests.conftest import datasets_dir, degrade

PEOPLE = 25
WINDOW = 2 * PEOPLE  # two probes per person per window


# -- statistics on synthetic samples --------------------------------------------------------
def test_psi_and_ks_identical_distributions_stay_quiet():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.5, 0.1, 60), rng.normal(0.5, 0.1, 60)
    assert population_stability_index(a, a) == pytest.approx(0.0, abs=1e-12)
    psi = population_stability_index(a, b, psi_bins(60, 60))
    assert psi < psi_noise_limit(60, 60, psi_bins(60, 60))
    assert ks_test(a, b)[1] > 0.01
    # Over many quiet pairs of 50, the PSI rule (noise-aware limit) and KS each alarm rarely.
    alarms_psi = alarms_ks = 0
    for _ in range(300):
        x, y = rng.normal(size=50), rng.normal(size=50)
        alarms_psi += population_stability_index(x, y, psi_bins(50, 50)) > psi_noise_limit(50, 50, psi_bins(50, 50))
        alarms_ks += ks_test(x, y)[1] < 0.01
    assert alarms_psi <= 6 and alarms_ks <= 9  # about 1 % or less


def test_psi_and_ks_shifted_distributions_fire():
    rng = np.random.default_rng(2)
    a, shifted, wider = rng.normal(0.5, 0.1, 60), rng.normal(0.35, 0.1, 60), rng.normal(0.5, 0.3, 60)
    assert population_stability_index(a, shifted, psi_bins(60, 60)) > psi_noise_limit(60, 60, psi_bins(60, 60))
    assert ks_test(a, shifted)[1] < 1e-4
    # A wider spread at the same mean: KS is weak here, the tail bins of PSI see it.
    assert population_stability_index(a, wider, psi_bins(60, 60)) > psi_noise_limit(60, 60, psi_bins(60, 60))
    # Large windows: the classic 0.2 limit applies (noise is far below it).
    big_a, big_b = rng.normal(0, 1, 5000), rng.normal(0.3, 1, 5000)
    assert psi_noise_limit(5000, 5000, 10) == pytest.approx(0.2)
    assert population_stability_index(big_a, big_b) > 0.05
    assert population_stability_index(big_a, rng.normal(0, 1, 5000)) < 0.01
    # Rates: Fisher's exact test.
    difference, p = rate_test(5, 50, 25, 50)
    assert difference == pytest.approx(0.4) and p < 1e-4
    assert rate_test(5, 50, 6, 50)[1] > 0.5


def _samples(rng, n, score_mu=0.6, brightness_mu=120.0, reject=0.1, start=0):
    return [
        DecisionSample(
            id=start + i, kind="verify", outcome="no_match" if rng.random() < reject else "match",
            score=float(rng.normal(score_mu, 0.08)), quality=float(np.clip(rng.normal(0.8, 0.05), 0, 1)),
            brightness=float(rng.normal(brightness_mu, 15)), face_size=float(rng.normal(120, 10)),
        )
        for i in range(n)
    ]


def test_compare_windows_on_synthetic_decisions():
    rng = np.random.default_rng(3)
    reference = _samples(rng, 60)
    quiet = {f.feature: f for f in compare_windows(reference, _samples(rng, 60, start=100))}
    assert not any(f.drifted for f in quiet.values()), [f for f in quiet.values() if f.drifted]
    assert quiet["identify_score"].reference_n == 0 and not quiet["identify_score"].enough_samples
    dark = {f.feature: f for f in compare_windows(reference, _samples(rng, 60, brightness_mu=60, reject=0.5, start=200))}
    assert dark["brightness"].drifted and dark["reject_rate"].drifted
    assert not dark["face_size"].drifted
    # Too few recent values: reported, never flagged.
    few = {f.feature: f for f in compare_windows(reference, _samples(rng, 5, brightness_mu=40, start=300))}
    assert not few["brightness"].enough_samples and not few["brightness"].drifted
    assert few["brightness"].psi is not None
    with pytest.raises(ValueError):
        DriftWindows(reference_last=10)


def test_windows_by_days_read_the_decision_log(tmp_path):
    """Time windows: the last ``recent_days`` against the ``reference_days`` before them; older
    decisions and other kinds (enroll) stay out."""
    import datetime as dt

    from facegate.config import Settings
    from facegate.gallery.service import GalleryService
    from facegate.storage.models import Decision

    service = GalleryService(settings=Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'd.db'}"), migrate=True)
    try:
        gallery_id = service.create_gallery("days", principal=SYSTEM).id
        now = dt.datetime.now(dt.timezone.utc)
        rng = np.random.default_rng(4)
        with service.ctx.sessions.begin() as session:
            def add(days_ago: float, brightness: float, kind: str = "verify") -> None:
                session.add(Decision(
                    gallery_id=gallery_id, kind=kind, outcome="match", subject_external_id="x", score=0.6,
                    quality=0.8, brightness=brightness, face_size=120.0, created_at=now - dt.timedelta(days=days_ago)))
            for i in range(40):
                add(60 + i * 0.1, 200.0)  # older than both windows
                add(10 + i * 0.3, float(rng.normal(120, 10)))  # reference: 8-28 days ago
                add(i * 0.1, float(rng.normal(70, 10)))  # recent: the last 7 days
                add(i * 0.1, 0.0, kind="enroll")
        report = gallery_drift(service, "days", DriftWindows(reference_days=21, recent_days=7), principal=SYSTEM)
        assert (report.reference.decisions, report.recent.decisions) == (40, 40)
        assert report.recent.end > report.recent.start == report.reference.end > report.reference.start
        brightness = report.feature("brightness")
        assert brightness.drifted and brightness.reference_mean > 100 and brightness.recent_mean < 90
        assert not report.feature("face_size").drifted and report.drifted_features == ["brightness"]
    finally:
        service.close()


# -- real photos ----------------------------------------------------------------------------
def _lfw_people(count: int, min_images: int = 6) -> tuple[object, list[tuple[str, list[str]]]]:
    root = datasets_dir("lfw")
    by: dict[str, list[str]] = defaultdict(list)
    with open(root / "manifest.csv") as handle:
        for row in csv.DictReader(handle):
            by[row["identity"]].append(row["relative_path"])
    people = sorted((name, sorted(paths)) for name, paths in by.items() if len(paths) >= min_images)
    return root, people



@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def real(request, tmp_path_factory):
    """The module's gallery with the three verify windows, and the two drift reports; once on
    SQLite and once on PostgreSQL + pgvector (probe vectors are stored as ``vector`` there)."""
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService, PhotoInput

    root, people = _lfw_people(PEOPLE)
    tmp = tmp_path_factory.mktemp(f"monitoring_{request.param}")
    url = fresh_database_url(request.param, tmp, request, prefix="facegate_monitoring")
    settings = Settings(data_dir=tmp / "data", database_url=url)
    service = GalleryService(settings, migrate=True, calibrations=RegistryCalibrations(settings),
                             observers=[FaceGateMetrics()])  # as the server builds it
    service.create_gallery("site", principal=SYSTEM)
    started = time.perf_counter()
    enrolled: list[tuple[str, list[str]]] = []
    for name, paths in people:
        if len(enrolled) == PEOPLE:
            break
        report = service.enroll("site", name, [PhotoInput(paths[0], (root / paths[0]).read_bytes())], principal=SYSTEM)
        if report.accepted == 1:
            enrolled.append((name, paths))
    assert len(enrolled) == PEOPLE

    def verify_all(indices: tuple[int, ...], transform=None) -> list[dict]:
        out = []
        for name, paths in enrolled:
            for i in indices:
                data = (root / paths[i]).read_bytes()
                data = transform(data) if transform else data
                try:
                    result = service.verify("site", name, PhotoInput(paths[i], data), principal=SYSTEM)
                    out.append({"subject": name, "decision": result.decision_id, "match": result.match})
                except FaceGateError as exc:
                    out.append({"subject": name, "error": exc.code})
        return out

    windows = DriftWindows(reference_last=WINDOW, recent_last=WINDOW)
    r_calls = verify_all((1, 2))
    u_calls = verify_all((3, 4))
    quiet = gallery_drift(service, "site", windows, principal=SYSTEM)
    s_calls = verify_all((3, 4), transform=degrade)
    shifted = gallery_drift(service, "site", windows, principal=SYSTEM)
    built = time.perf_counter() - started
    print(f"\n{request.param}: real-photo gallery: {PEOPLE} enrolled, {3 * WINDOW} verify calls in {built:.1f} s")
    for label, report in (("unshifted (U vs R)", quiet), ("shifted (S vs U)", shifted)):
        print(label)
        for f in report.features:
            if f.reference_n:
                print(f"  {f.feature:22s} n={f.reference_n}/{f.recent_n} mean {f.reference_mean:.3f} -> "
                      f"{f.recent_mean:.3f} PSI {f.psi:.3f} (limit {f.psi_limit:.3f}) stat {f.statistic:.3f} "
                      f"p {f.p_value:.2g} drifted={f.drifted}")
    try:
        yield {"service": service, "root": root, "enrolled": enrolled, "quiet": quiet, "shifted": shifted, "tmp": tmp,
               "url": url, "backend": request.param,
               "calls": {"R": r_calls, "U": u_calls, "S": s_calls}}
    finally:
        service.close()


def test_real_unshifted_window_stays_quiet(real):
    report = real["quiet"]
    assert report.reference.decisions == WINDOW and report.recent.decisions == WINDOW
    assert report.reference.last_decision_id < report.recent.first_decision_id
    assert not report.drifted, report.drifted_features
    for name in ("verify_score", "quality", "brightness", "face_size"):
        f = report.feature(name)
        assert f.enough_samples and f.reference_n >= 45 and f.recent_n >= 45


def test_real_darkened_blurred_window_fires(real):
    report = real["shifted"]
    assert report.drifted
    for name in ("brightness", "quality", "verify_score"):
        f = report.feature(name)
        assert f.drifted, f
        assert f.recent_mean < f.reference_mean
    brightness = report.feature("brightness")
    assert brightness.recent_mean < 0.5 * brightness.reference_mean
    # Size of the face in the frame did not change: not flagged.
    assert not report.feature("face_size").drifted
    # The stored probe columns are what the report used.
    from facegate.storage.models import Decision

    with real["service"].ctx.sessions() as session:
        rows = session.scalars(select(Decision).where(Decision.id >= report.recent.first_decision_id)).all()
    with_face = [d for d in rows if d.outcome != "no_face"]
    assert with_face and all(d.probe is not None and d.probe.shape == (512,) for d in with_face)
    assert all(d.brightness is not None and d.face_size is not None and d.quality is not None for d in with_face)


def _refresh_templates(service, gallery: str = "site") -> dict[int, tuple[str, str]]:
    from facegate.storage.models import FaceTemplate, Subject

    with service.ctx.sessions() as session:
        rows = session.execute(
            select(FaceTemplate.id, Subject.external_id, FaceTemplate.source_sha256)
            .join(Subject, Subject.id == FaceTemplate.subject_id)
            .where(FaceTemplate.source_sha256.like("probe:%"))
        ).all()
    return {tid: (subject, source) for tid, subject, source in rows}


def _template_count(service) -> int:
    return service.get_gallery("site", principal=SYSTEM).templates


def test_refresh_adds_verified_probes_respects_cap_and_reverts(real):
    from facegate.gallery.service import PhotoInput
    from facegate.monitoring.response import ResponsePolicy
    from facegate.storage.models import Decision, FaceTemplate, OpsAction

    service, root = real["service"], real["root"]
    base_templates = _template_count(service)
    assert base_templates == PEOPLE and not _refresh_templates(service)

    # 1. Recent window = the dark, blurred probes: drift triggers the response, but none of
    #    those probes is good enough to become a template.
    dark = respond_to_drift(
        service, "site", DriftWindows(reference_last=WINDOW, recent_last=WINDOW),
        ResponsePolicy(recalibrate=False), apply=True, principal=SYSTEM
    )
    assert dark.triggered and any(r.startswith("brightness") for r in dark.reasons)
    assert dark.refresh.add == [] and dark.refresh.skipped.get("low_quality", 0) > 0
    assert dark.actions == [] and _template_count(service) == base_templates

    # 2. Forced over U + S with a cap of one refresh template per subject: the newest good probe
    #    of each person is added, the other one is left out for the cap.
    windows = DriftWindows(reference_last=WINDOW, recent_last=2 * WINDOW)
    policy = ResponsePolicy(force=True, recalibrate=False, max_refresh_per_subject=1)
    plan = respond_to_drift(service, "site", windows, policy, principal=SYSTEM)  # dry run first: nothing changes
    assert not plan.applied and plan.refresh.add and _template_count(service) == base_templates
    first = respond_to_drift(service, "site", windows, policy, apply=True, principal=SYSTEM)
    added = first.refresh.add
    assert [i.decision_id for i in added] == [i.decision_id for i in plan.refresh.add]
    assert len({i.subject for i in added}) == len(added) >= PEOPLE // 2
    assert first.refresh.skipped.get("subject_cap", 0) >= len(added) // 2
    assert all(i.quality >= 0.7 and i.score >= i.threshold + 0.1 for i in added)
    refresh = _refresh_templates(service)
    assert sorted(refresh) == sorted(i.template_id for i in added)
    assert {source for _, source in refresh.values()} == {f"probe:{i.decision_id}" for i in added}
    with service.ctx.sessions() as session:
        for item in added:
            template = session.get(FaceTemplate, item.template_id)
            decision = session.get(Decision, item.decision_id)
            assert decision.subject_external_id == item.subject
            np.testing.assert_array_equal(template.vector, decision.probe)
        action = session.get(OpsAction, first.actions[0].id)
        assert action.kind == "refresh_templates" and action.reverted_at is None
        assert [a["template_id"] for a in action.details["added"]] == [i.template_id for i in added]
    assert _template_count(service) == base_templates + len(added)

    # Run again over the same window: every probe is already a template or over the cap.
    again = respond_to_drift(service, "site", windows, policy, principal=SYSTEM)
    assert again.refresh.add == [] and again.refresh.skipped.get("already_added", 0) == len(added)

    # 3. New good probes (photo 6) of five refreshed people replace their older refresh template.
    refreshed = {i.subject: i for i in added}
    people = [(name, paths) for name, paths in real["enrolled"] if name in refreshed][:5]
    for name, paths in people:
        service.verify("site", name, PhotoInput(paths[5], (root / paths[5]).read_bytes()), principal=SYSTEM)
    second = respond_to_drift(service, "site", DriftWindows(reference_last=WINDOW, recent_last=len(people)),
                                      policy, apply=True, principal=SYSTEM)
    replaced_subjects = {i.subject for i in second.refresh.add}
    assert replaced_subjects and replaced_subjects <= {name for name, _ in people}
    assert sorted(second.refresh.replace_template_ids) == sorted(refreshed[s].template_id for s in replaced_subjects)
    after = _refresh_templates(service)
    per_subject = defaultdict(list)
    for subject, _source in after.values():
        per_subject[subject].append(subject)
    assert all(len(v) == 1 for v in per_subject.values())  # the cap holds
    assert _template_count(service) == base_templates + len(added)

    # 4. Revert the second action: its templates go, the ones it replaced come back (same vectors).
    undone = revert_action(service, second.actions[0].id, principal=SYSTEM)
    assert sorted(undone["removed_templates"]) == sorted(i.template_id for i in second.refresh.add)
    assert sorted(r["template_id"] for r in undone["restored_templates"]) == sorted(second.refresh.replace_template_ids)
    restored = _refresh_templates(service)
    assert {s for s, _ in restored.values()} == {i.subject for i in added}
    assert sorted(src for _, src in restored.values()) == sorted(f"probe:{i.decision_id}" for i in added)
    with service.ctx.sessions() as session:
        for tid, (_subject, source) in restored.items():
            decision = session.get(Decision, int(source.split(":")[1]))
            np.testing.assert_array_equal(session.get(FaceTemplate, tid).vector, decision.probe)
    with pytest.raises(ConflictError):
        revert_action(service, second.actions[0].id, principal=SYSTEM)

    # Revert the first: exactly the refresh templates go, the enrolled ones stay.
    undone = revert_action(service, first.actions[0].id, principal=SYSTEM)
    assert len(undone["removed_templates"]) == len(added)
    assert _refresh_templates(service) == {} and _template_count(service) == base_templates
    # The search index follows: identify still finds an enrolled person.
    name, paths = real["enrolled"][0]
    found = service.identify("site", PhotoInput(paths[1], (root / paths[1]).read_bytes()), principal=SYSTEM)
    assert found.faces[0].subject == name


def test_recalibration_registers_version_and_revert_restores_production(real):
    from facegate.modelops.registry import PRODUCTION_ALIAS, active_calibration, list_versions
    from facegate.monitoring.response import ResponsePolicy

    service = real["service"]
    windows = DriftWindows(reference_last=WINDOW, recent_last=2 * WINDOW)  # U + S
    # Default policy: registered, not promoted (and 1e-4 is not resolvable from ~2,000 pairs).
    report = respond_to_drift(service, "site", windows, ResponsePolicy(force=True, refresh=False), apply=True, principal=SYSTEM)
    rc = report.recalibration
    print(f"\nrecalibration: {rc.probes} probes, {rc.impostor_pairs} impostor pairs, {rc.genuine_pairs} genuine; "
          f"FAR {rc.target_far:.2g} threshold {rc.threshold:.4f} CI {rc.threshold_ci}, in use {rc.current_threshold:.4f}, "
          f"genuine accept {rc.genuine_accept_rate:.3f}")
    assert rc.version == 1 and not rc.promote and not rc.resolvable
    assert rc.impostor_pairs == rc.probes * (PEOPLE - 1) and rc.genuine_pairs == rc.probes
    versions = list_versions("arcface", service.settings)
    assert [v.version for v in versions] == [1] and PRODUCTION_ALIAS not in versions[0].aliases
    assert versions[0].tags["gallery"] == "site"
    assert active_calibration("arcface", service.settings, refresh=True).name == "default"

    # With a gallery FAR the sample resolves (1e-2) and --promote, the version becomes production...
    service.update_gallery_settings("site", {"verify_far": 1e-2}, principal=SYSTEM)
    try:
        promoted = respond_to_drift(
            service, "site", windows, ResponsePolicy(force=True, refresh=False, promote=True), apply=True, principal=SYSTEM)
        assert promoted.recalibration.resolvable and promoted.recalibration.promote
        version = promoted.recalibration.version
        assert version == 2
        assert active_calibration("arcface", service.settings, refresh=True).name == f"mlflow:facegate-arcface/v{version}"
        # ...and reverting it puts back what was production before (none: the shipped default).
        outcome = revert_action(service, promoted.actions[0].id, principal=SYSTEM)
        assert outcome["production"] == "shipped default"
        assert active_calibration("arcface", service.settings, refresh=True).name == "default"
    finally:
        service.update_gallery_settings("site", {"verify_far": 1e-4}, principal=SYSTEM)


# -- HTTP: metrics and the drift route ------------------------------------------------------
def test_metrics_and_monitoring_routes_over_http(real, tmp_path):
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService
    from tests.api_fixtures import ServerThread

    service = real["service"]
    admin = service.create_api_key("monitor-admin", ["admin"], principal=SYSTEM).secret
    reader = service.create_api_key("monitor-reader", ["recognize"], principal=SYSTEM).secret
    runner = ServerThread(create_app(service))
    runner.start()
    # A second app in the same process (own service, metrics off) must not clash with the first.
    other = GalleryService(settings=Settings(data_dir=tmp_path / "d2", database_url=f"sqlite:///{tmp_path / 'o.db'}",
                                             metrics_enabled=False), migrate=True)
    second = ServerThread(create_app(other))
    second.start()
    try:
        api = httpx.Client(base_url=runner.base_url, headers={"X-API-Key": admin}, timeout=120)
        name, paths = real["enrolled"][0]
        photo = (real["root"] / paths[1]).read_bytes()
        assert api.post(f"/api/v1/galleries/site/subjects/{name}/verify", files={"file": ("p.jpg", photo)}).status_code == 200
        blank = cv2.imencode(".png", np.full((240, 320, 3), 128, np.uint8))[1].tobytes()
        assert api.post(f"/api/v1/galleries/site/subjects/{name}/verify", files={"file": ("b.png", blank)}).status_code == 422
        assert api.post("/api/v1/galleries/site/subjects/newbie/enroll",
                        files=[("files", ("b.png", blank))]).status_code == 200

        scraped = httpx.get(runner.base_url + "/metrics", timeout=30)  # no API key: Prometheus scrapes it
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
        text = scraped.text
        decisions = _metric(text, "facegate_decisions_total", kind="verify", outcome="match")
        assert decisions >= 3 * WINDOW * 0.5  # the module's verify calls went through _log too
        assert _metric(text, "facegate_recognition_no_face_total", kind="verify") >= 1
        assert _metric(text, "facegate_recognition_probes_total", kind="verify") >= 3 * WINDOW + 1
        assert _metric(text, "facegate_enroll_photos_total", status="rejected") >= 1
        assert _metric(text, "facegate_decision_score_count", kind="verify") >= 3 * WINDOW * 0.9
        assert _metric(text, "facegate_probe_quality_count", kind="verify") >= 3 * WINDOW * 0.9
        route = "/api/v1/galleries/{gallery}/subjects/{external_id}/verify"
        assert _metric(text, "facegate_http_requests_total", method="POST", route=route, status="200") == 1
        assert _metric(text, "facegate_http_requests_total", method="POST", route=route, status="422") == 1
        assert _metric(text, "facegate_http_request_duration_seconds_count", method="POST", route=route) == 2
        assert f'/api/v1/galleries/site/subjects/{name}' not in text  # templates, not raw paths

        # The drift route: same report as the service (and the CLI) computes; admin only.
        params = {"reference_last": WINDOW, "recent_last": WINDOW}
        over_http = api.get("/api/v1/galleries/site/monitoring/drift", params=params)
        assert over_http.status_code == 200, over_http.text
        direct = gallery_drift(service, "site", DriftWindows(**params), principal=SYSTEM)
        assert over_http.json()["features"] == json.loads(direct.model_dump_json())["features"]
        forbidden = httpx.get(runner.base_url + "/api/v1/galleries/site/monitoring/drift",
                              headers={"X-API-Key": reader}, timeout=30)
        assert forbidden.status_code == 403
        bad = api.get("/api/v1/galleries/site/monitoring/drift", params={"recent_last": 5})
        assert bad.status_code == 400
        # Limits from the caller: a p-value of almost 1 and a tiny PSI limit flag what the defaults do not.
        loose = api.get("/api/v1/galleries/site/monitoring/drift",
                        params={**params, "psi_limit": 1e-6, "p_value": 0.999999, "min_samples": 2}).json()
        assert loose["limits"] == {"psi": 1e-6, "p_value": 0.999999, "min_samples": 2}
        assert len(loose["drifted_features"]) > len(over_http.json()["drifted_features"])
        dry = api.post("/api/v1/galleries/site/monitoring/respond",
                       json={"windows": params, "policy": {"force": True, "recalibrate": False}})
        assert dry.status_code == 200 and dry.json()["applied"] is False
        assert api.get("/api/v1/galleries/site/monitoring/actions").status_code == 200
        assert api.post("/api/v1/monitoring/actions/999999/revert").status_code == 404
        assert httpx.get(second.base_url + "/metrics", timeout=30).status_code == 404
    finally:
        runner.stop()
        second.stop()
        other.close()


# -- the command line -----------------------------------------------------------------------
def test_monitor_cli_prints_the_service_report_and_responds(real, monkeypatch):
    from typer.testing import CliRunner

    from facegate.cli import app
    from facegate.config import get_settings

    service, tmp = real["service"], real["tmp"]
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp / "data"))
    monkeypatch.setenv("FACEGATE_DATABASE_URL", real["url"])
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        window = ["--reference-last", str(WINDOW), "--recent-last", str(WINDOW)]
        as_json = runner.invoke(app, ["monitor", "site", *window, "--json"])
        assert as_json.exit_code == 0, as_json.output
        direct = gallery_drift(service, "site", DriftWindows(reference_last=WINDOW, recent_last=WINDOW), principal=SYSTEM)
        assert json.loads(as_json.stdout)["features"] == json.loads(direct.model_dump_json())["features"]
        table = runner.invoke(app, ["monitor", "drift", "site", *window])
        assert table.exit_code == 0 and "brightness" in table.stdout and "face_size" in table.stdout

        wide = ["--reference-last", str(WINDOW), "--recent-last", str(2 * WINDOW)]
        dry = runner.invoke(app, ["monitor", "respond", "site", "--force", "--no-recalibrate", *wide])
        assert dry.exit_code == 0, dry.output
        assert "dry run" in dry.stdout and "template refresh" in dry.stdout
        before = service.get_gallery("site", principal=SYSTEM).templates
        applied = runner.invoke(app, ["monitor", "respond", "site", "--force", "--no-recalibrate", "--apply",
                                      "--max-refresh-per-subject", "1", *wide, "--json"])
        assert applied.exit_code == 0, applied.output
        report = json.loads(applied.stdout)
        added = len(report["refresh"]["add"])
        assert report["applied"] and added and service.get_gallery("site", principal=SYSTEM).templates == before + added
        action = report["actions"][0]["id"]
        listed = runner.invoke(app, ["monitor", "actions", "site", "--json"])
        assert listed.exit_code == 0, listed.output
        mine = [a for a in json.loads(listed.stdout) if a["id"] == action]
        assert mine and mine[0]["kind"] == "refresh_templates" and mine[0]["reverted_at"] is None
        assert runner.invoke(app, ["monitor", "actions", "site"]).exit_code == 0
        undone = runner.invoke(app, ["monitor", "revert", str(action)])
        assert undone.exit_code == 0, undone.output
        assert len(json.loads(undone.stdout)["removed_templates"]) == added
        assert service.get_gallery("site", principal=SYSTEM).templates == before
        again = runner.invoke(app, ["monitor", "revert", str(action)])
        assert again.exit_code == 2 and "already reverted" in again.output
        missing = runner.invoke(app, ["monitor", "revert", "999999"])
        assert missing.exit_code == 2 and "not found" in missing.output
    finally:
        get_settings.cache_clear()


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
