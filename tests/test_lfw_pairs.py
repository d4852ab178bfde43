"""LFW pairs-file reader: the real View 2 file when present, and small synthetic files always."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from facegate.evaluation.lfw import Pair, read_pairs

LFW_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "lfw"


def _real_lfw() -> Path:
    if not (LFW_DIR / "pairs.txt").is_file():
        pytest.skip("needs ../shared/datasets/lfw (real LFW data), not present")
    return LFW_DIR


def test_real_view2_pairs() -> None:
    lfw = _real_lfw()
    pairs = read_pairs(lfw)
    assert len(pairs) == 6000
    assert Counter(p.fold for p in pairs) == {k: 600 for k in range(10)}
    assert sum(p.same for p in pairs) == 3000
    for k in range(10):
        fold = [p for p in pairs if p.fold == k]
        assert [p.same for p in fold] == [True] * 300 + [False] * 300
    # First line after the header: "Abel_Pacheco 1 4"
    assert pairs[0] == Pair(
        lfw / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg",
        lfw / "Abel_Pacheco" / "Abel_Pacheco_0004.jpg",
        True,
        0,
    )
    missing = [str(p) for pair in pairs for p in (pair.path1, pair.path2) if not p.is_file()]
    assert missing == [], f"{len(missing)} referenced images missing, e.g. {missing[:3]}"


@pytest.mark.parametrize(("name", "n"), [("pairsDevTrain.txt", 1100), ("pairsDevTest.txt", 500)])
def test_real_view1_pairs(name: str, n: int) -> None:
    lfw = _real_lfw()
    pairs = read_pairs(lfw, name)
    assert len(pairs) == 2 * n
    assert {p.fold for p in pairs} == {0}
    assert [p.same for p in pairs] == [True] * n + [False] * n
    assert all(p.path1.is_file() and p.path2.is_file() for p in pairs)


SYNTHETIC = """2\t2
Alice\t1\t2
Bob\t3\t10
Alice\t1\tBob\t2
Carol\t4\tDan\t1
Erin\t1\t2
Frank\t2\t3
Gina\t1\tHank\t12
Ivan\t1\tAlice\t3
"""


def test_synthetic_view2_file(tmp_path: Path) -> None:
    (tmp_path / "pairs.txt").write_text(SYNTHETIC)
    pairs = read_pairs(tmp_path)
    assert len(pairs) == 8
    assert [p.fold for p in pairs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [p.same for p in pairs] == [True, True, False, False] * 2
    assert pairs[1] == Pair(
        tmp_path / "Bob" / "Bob_0003.jpg", tmp_path / "Bob" / "Bob_0010.jpg", True, 0
    )
    assert pairs[6] == Pair(
        tmp_path / "Gina" / "Gina_0001.jpg", tmp_path / "Hank" / "Hank_0012.jpg", False, 1
    )
    # Pair is frozen: usable as a dict key / in sets.
    assert len(set(pairs)) == 8


def test_synthetic_view1_file_single_number_header(tmp_path: Path) -> None:
    (tmp_path / "pairsDevTest.txt").write_text("1\nAlice 1 2\nAlice 1 Bob 1\n\n")
    pairs = read_pairs(tmp_path, "pairsDevTest.txt")
    assert pairs == [
        Pair(tmp_path / "Alice" / "Alice_0001.jpg", tmp_path / "Alice" / "Alice_0002.jpg", True, 0),
        Pair(tmp_path / "Alice" / "Alice_0001.jpg", tmp_path / "Bob" / "Bob_0001.jpg", False, 0),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # mismatched line (4 fields) where a matched one is expected, on line 3
        ("1 2\nAlice 1 2\nAlice 1 Bob 2\nC 1 D 1\nE 1 F 1\n", r"pairs\.txt:3: expected a matched"),
        # matched line where a mismatched one is expected, on line 3
        ("1 1\nAlice 1 2\nAlice 1 2\n", r"pairs\.txt:3: expected a mismatched"),
        ("1 1\nAlice one 2\nAlice 1 Bob 2\n", r"pairs\.txt:2: image number 'one'"),
        ("1 1\nAlice 0 2\nAlice 1 Bob 2\n", r"pairs\.txt:2: image number 0"),
        ("1 1\nAlice 2 2\nAlice 1 Bob 2\n", r"pairs\.txt:2: matched pair uses image 2"),
        ("1 1\nAlice 1 2\nAlice 1 Alice 2\n", r"pairs\.txt:3: mismatched pair names the same"),
        ("ten 300\nAlice 1 2\n", r"pairs\.txt:1: header must hold integers"),
        ("1 2 3\nAlice 1 2\n", r"pairs\.txt:1: header must be"),
        ("1 2\nAlice 1 2\nBob 1 2\nAlice 1 Bob 2\n", "announces 1 fold.* = 4 pairs, but 3"),
        ("", "empty"),
    ],
)
def test_malformed_files_raise_with_line_number(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        read_pairs(tmp_path)
