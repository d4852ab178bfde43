"""The LFW open-set experiment (bench/lfw_gallery.py) over a real HTTP server, both backends.

A fast subset runs in the suite; the full run (540 people, 1,000 strangers) is marked slow.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, datasets_dir


def run_experiment(backend: str, tmp_path, people: int, strangers: int) -> dict:
    lfw = datasets_dir("lfw")
    if backend == "postgresql":
        pytest.importorskip("pgserver")
    out = tmp_path / f"lfw_gallery_{backend}.json"
    command = [
        sys.executable, str(REPO / "bench" / "lfw_gallery.py"), "--backend", backend, "--lfw", str(lfw),
        "--json", str(out),
    ]
    if people:
        command += ["--people", str(people)]
    command += ["--strangers", str(strangers)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_enrolled_people_are_found_and_strangers_stay_unknown(backend, tmp_path):
    report = run_experiment(backend, tmp_path, people=30, strangers=150)
    mated, nonmated = report["mated"], report["nonmated"]
    assert report["enroll"]["enrolled"] >= 27
    assert mated["searches"] >= 60
    assert mated["rank1_rate"] >= 0.95
    assert mated["false_reject_rate"] <= 0.15
    assert nonmated["searches"] == 150
    assert nonmated["unknown_rate"] >= 0.99
    assert report["threshold"]["rate_kind"] == "fpir_per_search"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_full_lfw_open_set_experiment(backend, tmp_path):
    report = run_experiment(backend, tmp_path, people=0, strangers=1000)
    assert report["mated"]["rank1_rate"] >= 0.97
    assert report["nonmated"]["unknown_rate"] >= 0.999
