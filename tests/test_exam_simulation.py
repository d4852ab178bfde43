"""The simulated exam of bench/exam_simulation.py at full size (200 LFW students) over HTTP:
every impostor attempt must be refused and alerted; genuine students mostly admitted."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import REPO, datasets_dir


def test_simulated_exam_200_students(tmp_path):
    lfw = datasets_dir("lfw")
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import exam_simulation
    finally:
        sys.path.remove(str(REPO / "bench"))
    result = exam_simulation.run(lfw, students=200, seed=2026, backend="sqlite", workdir=Path(tmp_path))
    assert result["students_drawn"] == 200
    assert result["students_enrolled"] >= 180, result["roster_refusals_by_code"]
    assert result["genuine_attempts"] == result["impostor_attempts"] == result["students_enrolled"]
    # At the default threshold (verify FAR 1e-4): no impostor admitted, every one alerted.
    assert result["false_accepts"] == 0, result["false_accept_cases"]
    assert result["impostor_attempts_with_alert"] == result["impostor_attempts"]
    assert set(result["impostor_alert_kinds"]) <= {"impersonation", "mismatch"}
    # The impostor's face is another enrolled student: the 1:N cross-check names most of them.
    assert result["impostor_alert_kinds"].get("impersonation", 0) >= 0.9 * result["impostor_attempts"]
    # Genuine students: FRR at 1e-4 on LFW one-photo enrollment is about 1% (2/187 measured).
    assert result["frr"] <= 0.03, result["false_reject_cases"]
    # The export lists every student drawn, enrolled or not.
    assert result["attendance_csv_rows"] == 200
