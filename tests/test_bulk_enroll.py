"""Bulk enrollment (``facegate enroll bulk``) and bulk evaluation, locally and on a local Ray
cluster: real LFW photos, real SQLite galleries, the real CLI (in-process and as a process
killed with SIGKILL)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facegate.cli import app
from facegate.security import SYSTEM
from tests.conftest import REPO, datasets_dir, package_photo

runner = CliRunner()
THREADS = {"ort_intra_threads": 1, "ort_inter_threads": 1}


def lfw_people(count: int, skip: int = 0) -> list[Path]:
    """LFW people (name order) with 4 to 6 photos: a small, fixed subset."""
    people = [p for p in sorted(datasets_dir("lfw").iterdir()) if p.is_dir() and 4 <= len(list(p.glob("*.jpg"))) <= 6]
    return people[skip : skip + count]


def copy_people(people: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for person in people:
        shutil.copytree(person, dest / person.name)
    return dest


def new_service(data_dir: Path, *galleries: str):
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    service = GalleryService(Settings(data_dir=data_dir, **THREADS), migrate=True)
    for name in galleries:
        service.create_gallery(name, principal=SYSTEM)
    return service


def stored_templates(service, gallery: str) -> dict[tuple[str, str], np.ndarray]:
    """(subject id, source sha256) -> template vector of every template of a gallery."""
    from sqlalchemy import select

    from facegate.storage.models import FaceTemplate, Gallery, Subject

    with service.ctx.sessions() as session:
        rows = session.execute(
            select(Subject.external_id, FaceTemplate.source_sha256, FaceTemplate.vector)
            .join(FaceTemplate, FaceTemplate.subject_id == Subject.id)
            .join(Gallery, Gallery.id == Subject.gallery_id)
            .where(Gallery.name == gallery)
        ).all()
    keys = [(ext, sha) for ext, sha, _ in rows]
    assert len(keys) == len(set(keys)), "a (subject, source) pair is stored twice"
    return {(ext, sha): np.asarray(vector) for ext, sha, vector in rows}


def said(result) -> str:
    """A command's output with the console's line wrapping undone."""
    return " ".join(result.output.split())


def statuses(report) -> dict[str, tuple[str, str]]:
    return {item.photo: (item.status, item.code) for item in report.items}


@pytest.fixture(scope="module")
def six_people(tmp_path_factory) -> Path:
    return copy_people(lfw_people(6), tmp_path_factory.mktemp("lfw6") / "people")


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """The in-process CLI on a fresh data folder (as the other CLI tests do)."""
    from facegate.config import get_settings

    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACEGATE_ORT_INTRA_THREADS", "1")
    get_settings.cache_clear()
    assert runner.invoke(app, ["gallery", "create", "g"]).exit_code == 0
    yield tmp_path
    get_settings.cache_clear()


# -- local engine --------------------------------------------------------------------------------
def test_local_bulk_follows_the_enrollment_rules_and_a_second_run_stores_nothing(six_people, tmp_path):
    from facegate.gallery.inputs import PhotoInput
    from facegate.parallel import Compute
    from facegate.workflows.bulk_enroll import ALREADY_ENROLLED, bulk_enroll, read_source

    service = new_service(tmp_path / "data", "bulk", "reference")
    photos = read_source(six_people)
    assert len(photos) == sum(len(list(p.iterdir())) for p in six_people.iterdir()) >= 24
    ticks: list[int] = []
    first = bulk_enroll(service, "bulk", photos, Compute("local"), principal=SYSTEM,
                        on_start=ticks.append, on_progress=lambda: ticks.append(1))
    assert ticks[0] == len(photos) and len(ticks) == 1 + len(photos)
    assert first.photos == len(photos) and first.subjects == 6 and first.engine == "local"
    assert first.accepted + first.rejected + first.skipped == len(photos)
    assert first.accepted >= 18 and first.skipped == 0
    stored = stored_templates(service, "bulk")
    assert len(stored) == first.accepted
    assert first.subjects_created == len({subject for subject, _ in stored})
    assert all(item.template_id for item in first.items if item.status == "accepted")

    # The same photos through the ordinary enrollment path (one call per subject, photo bytes)
    # get the same verdict each: bulk applies every rule and nothing else.
    for person in sorted(six_people.iterdir()):
        files = sorted(person.iterdir())
        report = service.enroll("reference", person.name,
                                [PhotoInput(f"{person.name}/{f.name}", f.read_bytes()) for f in files], principal=SYSTEM)
        for item in report.items:
            assert statuses(first)[item.image] == (item.status, item.code), item
    reference = stored_templates(service, "reference")
    assert reference.keys() == stored.keys()
    assert all(np.allclose(reference[k], stored[k], atol=1e-6) for k in stored)

    second = bulk_enroll(service, "bulk", photos, Compute("local"), principal=SYSTEM)
    assert second.accepted == 0 and second.subjects_created == 0
    assert second.already_enrolled == second.skipped == first.accepted
    assert all(item.reason == ALREADY_ENROLLED for item in second.items if item.status == "skipped")
    assert {i.photo for i in second.items if i.status == "rejected"} == {i.photo for i in first.items if i.status == "rejected"}
    assert stored_templates(service, "bulk").keys() == stored.keys()
    service.close()


# -- Ray -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cpus():
    """One local Ray cluster of 2 CPUs for this module's Ray tests (the jobs reuse it)."""
    pytest.importorskip("ray")
    from facegate.parallel import ray_cluster

    with ray_cluster(2) as cpus:
        yield cpus


@pytest.mark.ray
def test_ray_enrollment_stores_the_same_templates_as_local(six_people, tmp_path, ray_cpus):
    from facegate.parallel import Compute
    from facegate.workflows.bulk_enroll import bulk_enroll, read_source

    service = new_service(tmp_path / "data", "local", "ray")
    photos = read_source(six_people)
    local = bulk_enroll(service, "local", photos, Compute("local"), principal=SYSTEM)
    on_ray = bulk_enroll(service, "ray", photos, Compute("ray", workers=2), principal=SYSTEM)
    assert on_ray.engine == "ray" and statuses(on_ray) == statuses(local)
    a, b = stored_templates(service, "local"), stored_templates(service, "ray")
    assert a.keys() == b.keys() and len(a) == local.accepted > 0
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert worst <= 1e-4, worst
    again = bulk_enroll(service, "ray", photos, Compute("ray", workers=2), principal=SYSTEM)
    assert again.accepted == 0 and again.already_enrolled == local.accepted
    service.close()


@pytest.mark.ray
def test_ray_evaluation_embeds_a_dataset_as_the_local_engine_does(six_people, ray_cpus):
    from facegate.engine import FaceEngine
    from facegate.evaluation.datasets import embed_dataset, read_dataset
    from facegate.parallel import Compute

    corrupt = six_people.parent / "with_corrupt"
    if not corrupt.exists():
        shutil.copytree(six_people, corrupt)
        (next(corrupt.iterdir()) / "zz_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    items = read_dataset(corrupt)
    engine = FaceEngine("arcface", "scrfd", settings=new_settings())
    local = embed_dataset(engine, items)
    on_ray = embed_dataset(engine, items, compute=Compute("ray", workers=2))
    assert on_ray.paths == local.paths and list(on_ray.identities) == list(local.identities)
    assert list(on_ray.fallbacks) == list(local.fallbacks) and "unreadable" in set(local.fallbacks)
    assert float(np.abs(on_ray.vectors - local.vectors).max()) <= 1e-4
    assert np.allclose(on_ray.quality, local.quality, atol=1e-4)


def new_settings():
    from facegate.config import Settings

    return Settings(**THREADS)


# -- killed half-way, run again ------------------------------------------------------------------
def _templates_in(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
        return c.execute("SELECT s.external_id, t.source_sha256 FROM face_templates t "
                         "JOIN subjects s ON s.id = t.subject_id").fetchall()


def test_kill_9_mid_bulk_enrollment_then_run_again(tmp_path):
    from facegate.parallel import Compute
    from facegate.workflows.bulk_enroll import bulk_enroll, read_source

    source = copy_people(lfw_people(10, skip=6), tmp_path / "people")
    # The uninterrupted run: what a complete job stores.
    reference = new_service(tmp_path / "reference", "g")
    whole = bulk_enroll(reference, "g", read_source(source), Compute("local"), principal=SYSTEM)
    expected = set(stored_templates(reference, "g"))
    reference.close()
    assert len(expected) == whole.accepted >= 25

    new_service(tmp_path / "data", "g").close()  # the gallery, made here: one process start less
    db = tmp_path / "data" / "facegate.db"
    env = {**os.environ, "FACEGATE_DATA_DIR": str(tmp_path / "data"), "FACEGATE_ORT_INTRA_THREADS": "1"}
    env.pop("FACEGATE_DATABASE_URL", None)
    command = [sys.executable, "-m", "facegate.cli", "enroll", "bulk", str(source), "--gallery", "g"]
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline, committed = time.monotonic() + 300, 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            committed = len(_templates_in(db))
        except sqlite3.Error:  # not created yet, or being written: look again
            committed = 0
        if committed >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, f"not killed mid-way: {proc.stdout.read().decode()[-600:]}"
    after_kill = _templates_in(db)
    assert 3 <= len(after_kill) < len(expected) and len(set(after_kill)) == len(after_kill)

    again = subprocess.run(command + ["--json"], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-800:]
    report = json.loads(again.stdout)
    assert report["already_enrolled"] == len(after_kill) and report["accepted"] == len(expected) - len(after_kill)
    final = _templates_in(db)
    assert len(final) == len(set(final)), "doubles after the resumed run"
    assert set(final) == expected, "gaps or extras after the resumed run"


# -- the command line: a roster CSV, bad inputs, the one-subject form --------------------------
def test_roster_csv_with_names_folders_and_bad_rows(cli_env):
    from facegate.config import get_settings
    from facegate.gallery.service import GalleryService

    people = lfw_people(2, skip=20)
    photos = cli_env / "roster" / "photos"
    photos.mkdir(parents=True)
    first = sorted(people[0].glob("*.jpg"))
    shutil.copy(first[0], photos / "a1.jpg")
    shutil.copy(first[1], photos / "a2.jpg")
    shutil.copy(first[0], photos / "a1_again.jpg")  # the same bytes under another name
    shutil.copytree(people[1], photos / "b")
    roster = cli_env / "roster" / "roster.csv"
    roster.write_text(
        "subject_id,photo,display_name\n"
        "A,photos/a1.jpg,Person A\n"
        "A,photos/a2.jpg,Person A\n"
        "A,photos/a1_again.jpg,Person A\n"
        "B,photos/b,\n"
        "C,photos/missing.jpg,Nobody\n"
        ",photos/a2.jpg,No Id\n"
    )
    report_file = cli_env / "out" / "report.csv"
    result = runner.invoke(app, ["enroll", "bulk", str(roster), "--gallery", "g", "--report", str(report_file)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(report_file.open()))
    assert len(rows) == 3 + len(list(people[1].glob("*.jpg"))) + 2
    by_photo = {r["photo"]: r for r in rows}
    assert by_photo["photos/a1.jpg"]["status"] == "accepted" and by_photo["photos/a1.jpg"]["subject"] == "A"
    assert (by_photo["photos/a1_again.jpg"]["status"], by_photo["photos/a1_again.jpg"]["code"]) == ("skipped", "duplicate")
    assert by_photo["photos/missing.jpg"]["code"] == "file_not_found" and by_photo["photos/missing.jpg"]["subject"] == "C"
    assert [r["code"] for r in rows if r["subject"] == ""] == ["invalid_row"]
    assert all(r["subject"] == "B" for r in rows if r["photo"].startswith("photos/b/"))
    assert "(1 already enrolled)" in said(result) and "file_not_found 1" in said(result)

    service = GalleryService(get_settings())
    assert service.get_subject("g", "A", principal=SYSTEM).display_name == "Person A"
    assert service.get_subject("g", "B", principal=SYSTEM).templates >= 1
    accepted = sum(r["status"] == "accepted" for r in rows)
    again = runner.invoke(app, ["enroll", "bulk", str(roster), "--gallery", "g", "--json"])
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["accepted"] == 0 and second["already_enrolled"] == accepted + 1  # + the copy of a1
    service.close()


def test_bad_sources_end_with_a_message_and_a_corrupt_photo_is_one_rejected_row(cli_env):
    missing = runner.invoke(app, ["enroll", "bulk", str(cli_env / "nowhere"), "--gallery", "g"])
    assert missing.exit_code == 2 and "nowhere not found" in said(missing) and "Traceback" not in missing.output
    bad_csv = cli_env / "bad.csv"
    bad_csv.write_text("id,file\nA,a.jpg\n")
    columns = runner.invoke(app, ["enroll", "bulk", str(bad_csv), "--gallery", "g"])
    assert columns.exit_code == 2 and "lacks the column(s) subject_id, photo" in said(columns)
    report_name = runner.invoke(app, ["enroll", "bulk", str(bad_csv), "--gallery", "g", "--report", "r.txt"])
    assert report_name.exit_code == 2 and ".csv or a .json" in said(report_name)
    no_gallery = cli_env / "people"
    copy_people(lfw_people(1, skip=30), no_gallery)
    unknown = runner.invoke(app, ["enroll", "bulk", str(no_gallery), "--gallery", "nope"])
    assert unknown.exit_code == 2 and "gallery 'nope' not found" in said(unknown)

    person = next(no_gallery.iterdir())
    (person / "zz_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    (person / "zz_empty.png").write_bytes(b"")
    result = runner.invoke(app, ["enroll", "bulk", str(no_gallery), "--gallery", "g", "--json"])
    assert result.exit_code == 0, result.output
    items = {i["photo"].split("/")[-1]: i for i in json.loads(result.stdout)["items"]}
    assert items["zz_corrupt.jpg"]["status"] == "rejected" and items["zz_corrupt.jpg"]["code"] in ("corrupt_image", "not_an_image")
    assert (items["zz_empty.png"]["status"], items["zz_empty.png"]["code"]) == ("rejected", "empty_image")
    assert sum(i["status"] == "accepted" for i in items.values()) >= 3


def test_the_one_subject_form_still_works_beside_bulk(cli_env):
    help_text = runner.invoke(app, ["enroll", "--help"], env={"COLUMNS": "200"})
    assert help_text.exit_code == 0 and "facegate enroll bulk" in said(help_text) and "--face-index" in help_text.output
    result = runner.invoke(app, ["enroll", "g", "yao", str(package_photo("yaoming.jpg")), "--name", "Yao Ming", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accepted"] == 1
    missing = runner.invoke(app, ["enroll", "g"])
    assert missing.exit_code == 2 and "Missing argument 'subject'" in said(missing)
