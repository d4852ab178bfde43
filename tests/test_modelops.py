"""Model operations end to end on real faces and a real MLflow store (SQLite under tmp_path).

A calibration measured on ORL is registered as a model version; promoting versions must
change the threshold (and the calibration named) in the service's verify results.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facegate.calibration import default_calibration
from facegate.config import Settings
from facegate.security import SYSTEM
from tests.conftest import datasets_dir, package_photo


@pytest.fixture(scope="module")
def orl_cache(tmp_path_factory) -> Path:
    """ORL embedded once with ArcFace; every test here reuses the .npz."""
    from facegate.modelops.jobs import embed_path

    root = datasets_dir("orl")
    cache = tmp_path_factory.mktemp("orl") / "orl_arcface.npz"
    embed_path(root, "arcface", "scrfd", cache=cache)
    return cache


def _mlflow_client(settings: Settings):
    from facegate.modelops.tracking import client

    return client(settings)


def test_calibrate_register_and_service_follows_production(tmp_path: Path, orl_cache: Path) -> None:
    from facegate.gallery.service import GalleryService, PhotoInput
    from facegate.modelops import registry
    from facegate.modelops.jobs import calibrate_dataset_job

    orl = datasets_dir("orl")
    settings = Settings(data_dir=tmp_path / "data", calibration_cache_ttl_s=0.5)
    job = calibrate_dataset_job(orl, target_far=1e-3, bootstrap=200, cache=orl_cache, settings=settings)
    result = job.result
    assert job.version == 1 and not job.promoted
    assert result.n_impostors == 78_000 and result.n_identities == 40 and result.resolvable
    assert result.threshold_ci[0] <= result.threshold <= result.threshold_ci[1]
    assert result.far_ci[0] <= 1e-3 <= result.far_ci[1]

    # The run: params, metrics, artifacts; the version: tags and a source holding the JSON.
    mlflow = _mlflow_client(settings)
    run = mlflow.get_run(job.run_id)
    assert run.data.params["model"] == "arcface"
    assert run.data.params["model_sha256"] == default_calibration("arcface").model_sha256
    assert run.data.params["dataset_hash"] == job.dataset_hash and len(job.dataset_hash) == 64
    assert run.data.params["dataset_path"] == str(orl.resolve())
    assert run.data.metrics["threshold"] == pytest.approx(result.threshold)
    assert run.data.metrics["threshold_ci_low"] <= run.data.metrics["threshold_ci_high"]
    assert "far_ci_high" in run.data.metrics
    artifacts = {a.path for a in mlflow.list_artifacts(job.run_id)}
    assert {"calibration", "calibration_candidate.json"} <= artifacts
    assert [a.path for a in mlflow.list_artifacts(job.run_id, "calibration")] == ["calibration/calibration.json"]
    version = mlflow.get_model_version("facegate-arcface", "1")
    assert version.run_id == job.run_id
    tags = version.tags
    assert tags["model_sha256"] == default_calibration("arcface").model_sha256
    assert tags["dataset_hash"] == job.dataset_hash
    assert float(tags["target_far"]) == 1e-3
    assert float(tags["threshold"]) == pytest.approx(result.threshold)
    assert json.loads(tags["threshold_ci"]) == pytest.approx(list(result.threshold_ci))
    assert json.loads(tags["far_ci"]) == pytest.approx(list(result.far_ci))
    low, high = json.loads(tags["far_prediction"])  # other people: wider than the interval itself
    assert low < result.far_ci[0] and high > result.far_ci[1]
    v1 = registry.load_version("arcface", 1, settings)
    assert v1.name == "mlflow:facegate-arcface/v1" and v1.thresholds == result.calibration.thresholds

    # A second version with another threshold table (half the people, seeded sample).
    job2 = calibrate_dataset_job(orl, target_far=1e-2, bootstrap=50, cache=orl_cache, settings=settings,
                                 limit_identities=20)
    assert job2.version == 2
    v2 = registry.load_version("arcface", 2, settings)

    service_settings = Settings(data_dir=tmp_path / "data", calibration_cache_ttl_s=0.5)
    service = GalleryService(service_settings, migrate=True, calibrations=registry.RegistryCalibrations(service_settings))
    try:
        service.create_gallery("lab", principal=SYSTEM)
        lfw = datasets_dir("lfw") / "Naoto_Kan"
        photo = lambda name: PhotoInput(name, (lfw / name).read_bytes())
        assert service.enroll("lab", "s1", [photo("Naoto_Kan_0001.jpg")], principal=SYSTEM).accepted == 1
        far = service.gallery_settings(service_gallery(service, "lab")).verify_far

        def threshold_now():
            info = service.verify("lab", "s1", photo("Naoto_Kan_0003.jpg"), principal=SYSTEM).threshold
            return info.threshold, info.calibration

        threshold, name = threshold_now()
        assert name.startswith("default:")
        assert threshold == pytest.approx(default_calibration("arcface").threshold_at(far))

        registry.promote_calibration("arcface", 1, settings)
        threshold, name = threshold_now()
        assert name.startswith("mlflow:facegate-arcface/v1:")
        assert threshold == pytest.approx(v1.threshold_at(far))
        assert threshold != pytest.approx(default_calibration("arcface").threshold_at(far))

        # Moving the alias behind the service's back: cached until the TTL runs out.
        mlflow.set_registered_model_alias("facegate-arcface", "production", "2")
        assert threshold_now()[1].startswith("mlflow:facegate-arcface/v1:")
        time.sleep(0.6)
        threshold, name = threshold_now()
        assert name.startswith("mlflow:facegate-arcface/v2:")
        assert threshold == pytest.approx(v2.threshold_at(far))
        shown = service.get_gallery("lab", principal=SYSTEM).active_calibration  # what the API and admin page show
        assert shown.calibration.startswith("mlflow:facegate-arcface/v2:") and shown.threshold == pytest.approx(threshold)
        assert v2.threshold_at(far) != pytest.approx(v1.threshold_at(far))

        # A production version measured on other weights is ignored, never applied.
        foreign = registry.calibrate_scores(
            np.linspace(-0.2, 0.6, 5000), 1e-2, "arcface", "0" * 64, "other weights", bootstrap=0
        ).calibration
        registry.publish_calibration(foreign, None, promote=True, settings=settings)
        assert threshold_now()[1].startswith("default:")
    finally:
        service.close()
        registry.refresh_active_calibration()


def service_gallery(service, name: str):
    from sqlalchemy import select

    from facegate.storage.models import Gallery

    with service.ctx.sessions() as session:
        return session.scalar(select(Gallery).where(Gallery.name == name))


def test_identity_bootstrap_is_wider_than_pair_bootstrap(orl_cache: Path) -> None:
    """Pairs share people: resampling pairs understates the threshold's uncertainty."""
    from facegate.evaluation.datasets import EmbeddedSet
    from facegate.modelops.registry import calibrate_scores, impostor_pairs

    embedded = EmbeddedSet.load(orl_cache)
    scores, i, j = impostor_pairs(embedded.vectors, embedded.identities)
    assert len(scores) == 78_000
    ids = embedded.identities
    by_people = calibrate_scores(scores, 1e-3, "arcface", embedded.model_sha256, "orl",
                                 identities=(ids[i], ids[j]), bootstrap=300)
    by_pairs = calibrate_scores(scores, 1e-3, "arcface", embedded.model_sha256, "orl", bootstrap=300)
    assert by_people.threshold == by_pairs.threshold
    width = lambda r: r.threshold_ci[1] - r.threshold_ci[0]
    assert width(by_people) > 1.5 * width(by_pairs)
    assert by_people.calibration.extra["bootstrap_unit"] == "identity"
    # The table stops where fewer than 10 impostor pairs would lie above the threshold.
    assert by_people.calibration.min_far * len(scores) >= 10
    assert 1e-3 in by_people.calibration.fars
    with pytest.raises(ValueError, match="cannot show FAR"):
        calibrate_scores(scores[:500], 1e-3, "arcface", embedded.model_sha256, "orl")


def _png_ok(path: Path) -> bool:
    import matplotlib.image

    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(path).shape[0] > 100


def test_eval_dataset_cli_on_orl(tmp_path: Path, orl_cache: Path, monkeypatch) -> None:
    from facegate.cli import app
    from facegate.config import get_settings

    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        out_dir = tmp_path / "report"
        result = CliRunner().invoke(
            app, ["eval", "dataset", str(datasets_dir("orl")), "--out", str(out_dir), "--cache", str(orl_cache)]
        )
        assert result.exit_code == 0, result.output
        metrics = json.loads((out_dir / "metrics.json").read_text())
        assert metrics["identification"]["rank1"] >= 0.97
        assert metrics["identification"]["probes"] == 360
        assert metrics["verification"]["auc"] > 0.99
        assert metrics["pairs"] == {"genuine": 1800, "impostor": 78_000, "impostor_total": 78_000}
        tar = metrics["verification"]["tar_at_far"]
        assert tar["1e-03"]["resolvable"] and not tar["1e-04"]["resolvable"]
        assert metrics["operating_point"]["calibration"] == "default"
        for name in ("roc.png", "det.png", "scores.png"):
            assert _png_ok(out_dir / name), name
        report = (out_dir / "report.md").read_text()
        assert "**unresolvable**" in report and "FAR 1e-04 is unresolvable" in report
        assert "unresolvable" in result.output

        # Tracked: params and the report's files as artifacts.
        from facegate.modelops.tracking import EVAL_EXPERIMENT, client

        mlflow = client(get_settings())
        experiment = mlflow.get_experiment_by_name(EVAL_EXPERIMENT)
        (run,) = mlflow.search_runs([experiment.experiment_id])
        assert run.data.params["dataset_hash"] and run.data.params["detector"] == "scrfd"
        assert run.data.metrics["rank1"] == metrics["identification"]["rank1"]
        assert {a.path for a in mlflow.list_artifacts(run.info.run_id, "report")} >= {
            "report/roc.png", "report/det.png", "report/scores.png", "report/report.md"}
    finally:
        get_settings.cache_clear()


def _text(result) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_calibration_cli_list_promote_show(tmp_path: Path, orl_cache: Path, monkeypatch) -> None:
    from facegate.cli import app
    from facegate.config import get_settings
    from facegate.modelops.registry import refresh_active_calibration

    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        empty = runner.invoke(app, ["calibration", "list"])
        assert empty.exit_code == 0 and "shipped default applies" in _text(empty)
        made = runner.invoke(app, ["calibrate", "--dataset", str(datasets_dir("orl")), "--target-far", "1e-3",
                                   "--bootstrap", "100", "--cache", str(orl_cache), "--promote"])
        assert made.exit_code == 0, made.output
        assert "registered facegate-arcface version 1 and promoted" in _text(made)
        assert "95% interval" in _text(made)
        listed = runner.invoke(app, ["calibration", "list"])
        assert "production" in _text(listed)
        shown = runner.invoke(app, ["calibration", "show"])
        assert shown.exit_code == 0 and _text(shown).startswith("mlflow:facegate-arcface/v1")
        missing = runner.invoke(app, ["calibration", "promote", "7"])
        assert missing.exit_code == 2
        # 'facegate compare' decides with the same calibration as the service.
        photo = package_photo("yaoming.jpg")
        compared = runner.invoke(app, ["compare", str(photo), str(photo), "--json"])
        assert compared.exit_code == 0, compared.output
        assert json.loads(compared.stdout)["calibration"].startswith("mlflow:facegate-arcface/v1:")
    finally:
        refresh_active_calibration()
        get_settings.cache_clear()


def test_yale_conditions_are_reported(tmp_path: Path) -> None:
    """Yale's file names carry the capture condition; each gets its genuine TAR/FRR."""
    from facegate.evaluation.dataset_eval import YALE_CONDITIONS, condition_of
    from facegate.modelops.jobs import evaluate_dataset_job

    assert condition_of("yale/subject03.leftlight") == "leftlight"
    assert condition_of("lfw/Ann/Ann_0001.jpg") is None
    job = evaluate_dataset_job(datasets_dir("yale"), out_dir=tmp_path / "yale",
                               settings=Settings(data_dir=tmp_path / "data"), track=False)
    conditions = job.evaluation.by_condition
    assert set(conditions) == set(YALE_CONDITIONS)
    assert all(0 <= row["tar"] <= 1 and row["tar"] + row["frr"] == pytest.approx(1) for row in conditions.values())
    assert "## By condition" in (tmp_path / "yale" / "report.md").read_text()


@pytest.mark.slow
def test_eval_lfw_is_tracked(tmp_path: Path, monkeypatch) -> None:
    """``eval lfw`` records its run: params with the dataset hash, metrics, the JSON report."""
    from facegate.cli import app
    from facegate.config import get_settings
    from facegate.modelops.tracking import EVAL_EXPERIMENT, client

    lfw = datasets_dir("lfw")
    cached = Path(__file__).resolve().parents[1] / "out" / "lfw_all_arcface.npz"
    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        args = ["eval", "lfw", "--data", str(lfw), "--pairs-file", "pairsDevTest.txt", "--json", str(tmp_path / "r.json")]
        result = CliRunner().invoke(app, args + (["--cache", str(cached)] if cached.exists() else []))
        assert result.exit_code == 0, result.output
        mlflow = client(get_settings())
        (run,) = mlflow.search_runs([mlflow.get_experiment_by_name(EVAL_EXPERIMENT).experiment_id])
        assert run.data.params["benchmark"] == "LFW pairsDevTest.txt" and len(run.data.params["dataset_hash"]) == 64
        assert run.data.metrics["auc"] > 0.99
        assert "report/lfw.json" in {a.path for a in mlflow.list_artifacts(run.info.run_id, "report")}
        plots = {a.path for a in mlflow.list_artifacts(run.info.run_id, "plots")}
        assert plots == {"plots/roc.png", "plots/det.png", "plots/scores.png"}
    finally:
        get_settings.cache_clear()


def test_impostor_sample_is_seeded_and_clean(orl_cache: Path) -> None:
    """Above --max-impostors the pairs are a seeded sample: same pairs every run, no repeats,
    never two photos of one person, every genuine pair kept."""
    from facegate.evaluation.dataset_eval import make_pairs
    from facegate.evaluation.datasets import EmbeddedSet

    embedded = EmbeddedSet.load(orl_cache)
    a, b = make_pairs(embedded, 5000, seed=0), make_pairs(embedded, 5000, seed=0)
    assert np.array_equal(a.first, b.first) and np.array_equal(a.second, b.second)
    assert (a.n_genuine, a.n_impostor, a.impostor_total) == (1800, 5000, 78_000)
    imp = a.labels == 0
    ids = embedded.identities
    assert not (ids[a.first[imp]] == ids[a.second[imp]]).any()
    assert (ids[a.first[~imp]] == ids[a.second[~imp]]).all()
    assert len(set(zip(a.first[imp].tolist(), a.second[imp].tolist()))) == 5000
    assert not np.array_equal(make_pairs(embedded, 5000, seed=1).first, a.first)
