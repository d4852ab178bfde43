"""Exports that leave FaceGate for a spreadsheet or a browser's download: no formula runs from
a CSV cell, no file name breaks out of its header."""

from __future__ import annotations

import csv
import io

import pytest
from pydantic import ValidationError

from facegate.api.workflow_routes import attachment
from facegate.workflows.attendance import attendance_csv, csv_safe, student_row
from facegate.workflows.exam_schemas import ExamSessionIn


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\",\"y\")", "=1+2", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)",
                                  "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell):
    assert csv_safe(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["Ada Lovelace", "-0.1234", "0.5", "+5", "", "S001", 3])
def test_ordinary_cells_and_numbers_are_left_alone(cell):
    assert csv_safe(cell) == cell


def test_the_attendance_csv_neutralises_names_and_ids():
    rows = [student_row("=1+2", "=HYPERLINK(\"http://evil\",\"click\")", [], 0)]
    parsed = list(csv.DictReader(io.StringIO(attendance_csv(rows))))
    assert parsed[0]["student_id"] == "'=1+2"
    assert parsed[0]["name"].startswith("'=HYPERLINK")
    assert parsed[0]["status"] == "absent"


@pytest.mark.parametrize("name", ['attendance-a"b.csv', "attendance-a\r\nSet-Cookie: x=1.csv", "attendance-ä;x=y.csv"])
def test_download_names_cannot_break_the_header(name):
    header = attachment(name)
    assert "\r" not in header and "\n" not in header
    fallback = header.split('filename="', 1)[1].split('"', 1)[0]
    assert '"' not in fallback and ";" not in fallback and all(32 <= ord(c) < 127 for c in fallback)
    assert header.count(";") == 2  # attachment; filename=...; filename*=...


def test_exam_codes_with_control_characters_are_refused():
    base = {"course": "CS", "starts_at": "2026-01-01T09:00:00Z", "ends_at": "2026-01-01T11:00:00Z"}
    for bad in ("a\r\nb", "a\x00b", "a/b"):
        with pytest.raises(ValidationError):
            ExamSessionIn(code=bad, **base)
    assert ExamSessionIn(code='CS101 "final"', **base).code == 'CS101 "final"'
