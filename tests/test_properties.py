"""Property tests (hypothesis) on the parsers that take untrusted input: image bytes, roster
CSV, LFW pair files and pair CSVs. Whatever comes in, the answer is a result or FaceGate's own
clear error, never an unexpected exception."""

from __future__ import annotations

import io
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from facegate.errors import FaceGateError, ImageError  # noqa: E402
from facegate.imaging import ImageLimits, decode_image  # noqa: E402

LIMITS = ImageLimits(max_bytes=2 * 1024 * 1024, max_pixels=4_000_000, max_decoded_bytes=64 * 1024 * 1024)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8)).save(buf, fmt)
    return buf.getvalue()


SEEDS = [_encoded(f) for f in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")]


@FAST
@given(st.binary(max_size=4096))
def test_random_bytes_decode_or_fail_cleanly(data):
    try:
        out = decode_image(data, LIMITS)
    except ImageError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


@FAST
@given(st.sampled_from(SEEDS), st.data())
def test_damaged_images_decode_or_fail_cleanly(seed, data):
    """Real images with bytes flipped, cut short or spliced: an RGB array or an ImageError."""
    blob = bytearray(seed)
    for _ in range(data.draw(st.integers(0, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    try:
        out = decode_image(bytes(blob[:cut]), LIMITS)
    except ImageError:
        return
    assert out.dtype == np.uint8 and out.shape[2] == 3 and out.flags.c_contiguous


CSV_TEXT = st.text(alphabet=string.printable + "éü\u00a0\ufeff\x00\"=+-@", max_size=600)


@FAST
@given(CSV_TEXT)
def test_any_roster_text_parses_or_is_refused(text):
    from facegate.workflows.roster import parse_roster

    def resolve(cell: str):
        if not cell.strip():
            raise FaceGateError("empty photo cell")
        return []

    try:
        rows = parse_roster(text, resolve)
    except FaceGateError:
        return
    for row in rows:
        assert isinstance(row.student_id, str) and isinstance(row.line, int)
        assert row.error or row.student_id  # a row without an id carries its error


@FAST
@given(st.lists(st.lists(st.text(alphabet=string.ascii_letters + string.digits + " _-./", max_size=12),
                         min_size=0, max_size=5), max_size=12))
def test_any_lfw_pairs_file_parses_or_names_the_line(lines):
    from facegate.evaluation.lfw import read_pairs

    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "pairs.txt").write_text("\n".join(" ".join(tokens) for tokens in lines), encoding="utf-8")
        try:
            pairs = read_pairs(Path(tmp))
        except ValueError as exc:
            assert "pairs.txt" in str(exc)
            return
        assert all(p.same in (True, False) for p in pairs)


@FAST
@given(st.lists(st.lists(st.text(alphabet=string.printable, max_size=10), min_size=0, max_size=4), max_size=10))
def test_any_pair_csv_parses_or_names_the_line(rows):
    import csv

    from facegate.evaluation.pairs import read_pairs_csv

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "pairs.csv")
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
        try:
            pairs, labels = read_pairs_csv(path)
        except ValueError as exc:
            assert "pairs.csv" in str(exc)
            return
        assert labels is None or len(labels) == len(pairs)
