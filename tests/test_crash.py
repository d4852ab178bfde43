"""kill -9 in the middle of a roster import and of a bulk enrollment: what was committed is
whole (no template without its subject, no subject without a template, no half row), and
running the same command again finishes the job with no doubles and no gaps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import datasets_dir

PEOPLE = 40


def _people() -> list[tuple[str, Path]]:
    lfw = datasets_dir("lfw")
    chosen = []
    for folder in sorted(lfw.iterdir()):
        photos = sorted(folder.glob("*.jpg"))
        if folder.is_dir() and photos:
            chosen.append((folder.name, photos[0]))
        if len(chosen) == PEOPLE:
            break
    return chosen


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "facegate.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])


def _counts(db: Path) -> dict[str, int]:
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        q = lambda sql: int(c.execute(text(sql)).scalar())  # noqa: E731
        counts = {
            "subjects": q("SELECT count(*) FROM subjects"),
            "templates": q("SELECT count(*) FROM face_templates"),
            "empty_subjects": q("SELECT count(*) FROM subjects s WHERE NOT EXISTS "
                                "(SELECT 1 FROM face_templates t WHERE t.subject_id = s.id)"),
            "orphan_templates": q("SELECT count(*) FROM face_templates t WHERE NOT EXISTS "
                                  "(SELECT 1 FROM subjects s WHERE s.id = t.subject_id)"),
            "doubles": q("SELECT count(*) FROM (SELECT subject_id, source_sha256 FROM face_templates "
                         "GROUP BY subject_id, source_sha256 HAVING count(*) > 1) AS d"),
        }
        assert c.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    engine.dispose()
    return counts


def _kill_when(db: Path, proc: subprocess.Popen, at_least: int, timeout: float = 240) -> int:
    """kill -9 the process once ``at_least`` templates are committed; returns how many were."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the import finished before it could be killed: {proc.stdout.read().decode()[-500:]}")
        if db.exists():
            try:
                if _counts(db)["templates"] >= at_least:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(30)
                    return _counts(db)["templates"]
            except Exception:  # noqa: BLE001 - the database is being written: look again
                pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("the import did not reach the kill point in time")


def test_kill_9_mid_roster_import_then_resume(tmp_path):
    people = _people()
    csv = tmp_path / "roster.csv"
    csv.write_text("student_id,name,photo\n" + "".join(f"S{i:03d},{n},{p}\n" for i, (n, p) in enumerate(people)))
    db = tmp_path / "fg.db"
    env = {**os.environ, "FACEGATE_DATA_DIR": str(tmp_path / "data"), "FACEGATE_DATABASE_URL": f"sqlite:///{db}",
           "FACEGATE_ORT_INTRA_THREADS": "1"}
    assert _cli(env, "gallery", "create", "exam").wait(120) == 0
    committed = _kill_when(db, _cli(env, "roster", "import", "exam", str(csv)), at_least=8)
    after_kill = _counts(db)
    assert after_kill["empty_subjects"] == 0 and after_kill["orphan_templates"] == 0 and after_kill["doubles"] == 0
    assert 8 <= committed < PEOPLE
    again = _cli(env, "roster", "import", "exam", str(csv))
    output = again.communicate(timeout=600)[0].decode()
    assert again.returncode == 0, output[-800:]
    final = _counts(db)
    # Every photo whose face passes is in, once; the rejected ones (quality, cross-match) left no subject.
    assert final["doubles"] == 0 and final["empty_subjects"] == 0 and final["orphan_templates"] == 0
    assert final["templates"] == final["subjects"] >= committed
    assert final["templates"] >= PEOPLE * 0.8, (final, output[-800:])


def test_kill_9_mid_bulk_enrollment_then_resume(tmp_path):
    """One subject, many photos in one command (``facegate enroll``): killed half-way, run again."""
    lfw = datasets_dir("lfw")
    # The person with the most photos in the shared copy, at most 18 (a subject may have 20).
    folder = max((d for d in lfw.iterdir() if d.is_dir()), key=lambda d: (len(list(d.glob("*.jpg"))), d.name))
    photos = sorted(folder.glob("*.jpg"))[:18]
    if len(photos) < 10:
        pytest.skip("needs 10 photos of one person in the shared LFW copy")
    db = tmp_path / "fg.db"
    env = {**os.environ, "FACEGATE_DATA_DIR": str(tmp_path / "data"), "FACEGATE_DATABASE_URL": f"sqlite:///{db}",
           "FACEGATE_ORT_INTRA_THREADS": "1"}
    assert _cli(env, "gallery", "create", "team").wait(120) == 0
    args = ["enroll", "team", "gwb", *map(str, photos)]
    committed = _kill_when(db, _cli(env, *args), at_least=3)
    assert _counts(db)["doubles"] == 0 and committed < len(photos)
    again = _cli(env, *args)
    output = again.communicate(timeout=600)[0].decode()
    final = _counts(db)
    assert final["doubles"] == 0 and final["subjects"] == 1 and final["orphan_templates"] == 0
    assert final["templates"] >= committed and "skipped" in output.lower(), output[-600:]
