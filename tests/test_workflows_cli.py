"""The workflow commands as a user runs them: the real ``facegate`` executable in its own
process, on a fresh data folder (SQLite), with real LFW photos on disk."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import datasets_dir

FACEGATE = Path(sys.executable).parent / "facegate"


def run(env: dict, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(FACEGATE), *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == expect, f"{args}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_exam_and_access_commands(tmp_path):
    lfw = datasets_dir("lfw")
    env = dict(os.environ, FACEGATE_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    # A roster folder as a registrar would prepare it: one photo per student, one student with a folder.
    roster_dir = tmp_path / "roster"
    (roster_dir / "photos" / "s1").mkdir(parents=True)
    shutil.copy(lfw / "Roger_Federer/Roger_Federer_0006.jpg", roster_dir / "photos/s1/a.jpg")
    shutil.copy(lfw / "Roger_Federer/Roger_Federer_0003.jpg", roster_dir / "photos/s1/b.jpg")
    shutil.copy(lfw / "Naoto_Kan/Naoto_Kan_0001.jpg", roster_dir / "photos/kan.jpg")
    (roster_dir / "roster.csv").write_text(
        "student_id,name,photo\n"
        "S1,Roger Federer,photos/s1\n"
        "S2,Naoto Kan,photos/kan.jpg\n"
        "S3,Nobody,photos/missing.jpg\n"
    )
    run(env, "gallery", "create", "uni")
    imported = run(env, "roster", "import", "uni", str(roster_dir / "roster.csv"))
    assert "3 rows: 2 students created" in imported.stdout and "3 enrolled" in imported.stdout
    assert "missing.jpg" in imported.stdout and "invalid_row" in imported.stdout
    again = run(env, "roster", "import", "uni", str(roster_dir / "roster.csv"))
    assert "0 students created, 2 updated" in again.stdout and "3 already enrolled" in again.stdout

    now = dt.datetime.now(dt.timezone.utc)
    run(env, "session", "create", "uni", "PHYS-1", "--course", "Physics", "--room", "B2",
        "--start", (now - dt.timedelta(minutes=1)).isoformat(), "--end", (now + dt.timedelta(hours=1)).isoformat(),
        "--student", "S1", "--student", "S2")
    ok = run(env, "checkin", "uni", "PHYS-1", "S1", str(lfw / "Roger_Federer/Roger_Federer_0007.jpg"), "--kiosk", "k1")
    assert "present" in ok.stdout
    impostor = run(env, "checkin", "uni", "PHYS-1", "S2", str(lfw / "Roger_Federer/Roger_Federer_0008.jpg"), expect=1)
    assert "rejected" in impostor.stdout and "impersonation" in impostor.stdout
    out_csv = tmp_path / "attendance.csv"
    run(env, "attendance", "export", "uni", "PHYS-1", "--out", str(out_csv))
    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO(out_csv.read_text()))}
    assert rows["S1"]["status"] == "present" and rows["S1"]["kiosk"] == "k1"
    assert rows["S2"]["status"] == "rejected" and rows["S2"]["alerts"] == "1"
    alerts = run(env, "alerts", "list", "uni")
    assert "impersonation" in alerts.stdout

    # Access rights on the same people.
    run(env, "access", "grant", "uni", "S1", "lab:enter")
    granted = run(env, "access", "check", "uni", str(lfw / "Roger_Federer/Roger_Federer_0012.jpg"), "--right", "lab:enter")
    assert "GRANTED" in granted.stdout and "S1" in granted.stdout
    denied = run(env, "access", "check", "uni", str(lfw / "Naoto_Kan/Naoto_Kan_0003.jpg"), "--right", "lab:enter", expect=1)
    assert "DENIED" in denied.stdout and "lacks" in denied.stdout
