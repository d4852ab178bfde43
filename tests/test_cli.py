"""The command line, run as a user would (typer's runner, real models, real photos)."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from facegate.cli import app
from tests.conftest import datasets_dir, package_photo

runner = CliRunner()


def test_models_lists_every_model_with_its_licence():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["key"]: r for r in json.loads(result.stdout)}
    assert {"scrfd_500m", "arcface_mbf", "dlib_resnet", "dlib_hog"} <= set(rows)
    assert all(r["checksum"] in ("ok", "built in") for r in rows.values())
    assert "non-commercial" in rows["arcface_mbf"]["licence"] and not rows["arcface_mbf"]["commercial_use"]
    assert "commercial use allowed" in rows["dlib_resnet"]["licence"] and rows["dlib_resnet"]["commercial_use"]
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0 and "research only" in table.output


def test_detect_json_and_draw(tmp_path):
    drawn = tmp_path / "out.jpg"
    result = runner.invoke(app, ["detect", str(package_photo("gdp.jpg")), "--json", "--draw", str(drawn)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    faces = report[0]["faces"]
    assert len(faces) >= 3
    assert all(len(f["landmarks"]) == 5 and 0 <= f["quality"]["score"] <= 1 for f in faces)
    assert drawn.stat().st_size > 10_000


def test_detect_reports_a_bad_file_without_a_traceback(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a photo")
    result = runner.invoke(app, ["detect", str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "not" in result.output.lower()


def test_compare_same_photo_mirrored_is_a_match_and_strangers_are_not(tmp_path):
    from PIL import Image

    src = package_photo("yaoming.jpg")
    mirrored = tmp_path / "mirrored.png"
    Image.open(src).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored)
    same = runner.invoke(app, ["compare", str(src), str(mirrored), "--json"])
    assert same.exit_code == 0, same.output
    same_result = json.loads(same.stdout)
    assert same_result["match"] is True and same_result["similarity"] > same_result["threshold"]
    assert same_result["target_far"] > 0 and same_result["calibration"]


def test_compare_refuses_a_photo_without_a_face(tmp_path):
    from PIL import Image

    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (120, 120, 120)).save(blank)
    result = runner.invoke(app, ["compare", str(package_photo("yaoming.jpg")), str(blank)])
    assert result.exit_code == 2
    assert "no face" in result.output


def test_eval_pairs_writes_a_score_column_and_counts_fallbacks(tmp_path):
    from PIL import Image

    src = package_photo("yaoming.jpg")
    Image.open(src).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp_path / "a.png")
    Image.open(src).save(tmp_path / "b.jpg")
    Image.new("RGB", (250, 250), (90, 90, 90)).save(tmp_path / "blank.png")
    (tmp_path / "pairs.csv").write_text("path1,path2,same\na.png,b.jpg,1\na.png,blank.png,0\n")
    result = runner.invoke(
        app, ["eval", "pairs", "--pairs", str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "scores.csv")]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "scores.csv").open()))
    assert [r["path1"] for r in rows] == ["a.png", "a.png"]
    assert float(rows[0]["score"]) > 0.6 > float(rows[1]["score"])
    assert "center_crop: 1" in result.output


def test_eval_detection_on_dlib_testing_xml_meets_the_goal():
    xml = datasets_dir("dlib_faces") / "testing.xml"
    result = runner.invoke(app, ["eval", "detection", "--xml", str(xml), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["recall"] >= 0.95
    assert report["false_positives_per_image"] <= 1.0


def test_no_face_on_the_dogs_photo():
    dogs = datasets_dir("dlib_faces") / "dogs.jpg"
    result = runner.invoke(app, ["detect", str(dogs), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["faces"] == []


def test_crowd_photo_has_many_faces(tmp_path):
    crowd = datasets_dir("groups") / "Pytorch_Retinaface" / "test.jpg"
    result = runner.invoke(app, ["detect", str(crowd), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)[0]["faces"]) >= 18


@pytest.mark.slow
def test_lfw_view2_full_protocol_meets_the_arcface_goal(tmp_path):
    lfw = datasets_dir("lfw")
    out_json = tmp_path / "lfw.json"
    result = runner.invoke(app, ["eval", "lfw", "--data", str(lfw), "--json", str(out_json), "--no-track"])
    assert result.exit_code == 0, result.output
    assert json.loads(out_json.read_text())["kfold"]["mean"] >= 0.996
