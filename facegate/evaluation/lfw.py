"""Reader for the LFW verification protocol files (pairs.txt, pairsDevTrain.txt, pairsDevTest.txt).

Format (LFW README, section 3c), fields separated by whitespace (tabs in the official files):

* ``pairs.txt`` (View 2): the first line is ``<folds> <pairs per class per fold>``
  (``10 300``); then, for each fold, that many matched lines ``name n1 n2`` followed by
  as many mismatched lines ``name1 n1 name2 n2``.
* ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` (View 1): the first line is a single ``N``;
  then N matched lines and N mismatched lines, all in fold 0.

Image ``n`` of ``name`` is ``<lfw_dir>/<name>/<name>_<n:04d>.jpg``.

Whether a line is matched or mismatched is fixed by its position, so a line of the wrong
shape is reported (with its 1-based line number) instead of being guessed at: a shifted
file would silently put pairs into the wrong fold or class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    """One verification pair; ``fold`` is 0-based (0..9 for View 2, 0 for View 1 files)."""

    path1: Path
    path2: Path
    same: bool
    fold: int


def image_path(lfw_dir: Path, name: str, number: int) -> Path:
    """Where LFW stores image ``number`` (1-based) of ``name``."""
    return Path(lfw_dir) / name / f"{name}_{number:04d}.jpg"


def _image_number(token: str, where: str) -> int:
    try:
        number = int(token)
    except ValueError:
        raise ValueError(f"{where}: image number {token!r} is not an integer") from None
    if number < 1:
        raise ValueError(f"{where}: image number {number} must be >= 1")
    return number


def _parse_header(tokens: list[str], where: str) -> tuple[int, int]:
    """``(folds, pairs per class per fold)`` from ``"10 300"`` or ``"N"``."""
    if len(tokens) not in (1, 2):
        raise ValueError(
            f"{where}: header must be '<folds> <pairs per fold>' or '<pairs>', got {' '.join(tokens)!r}"
        )
    try:
        values = [int(t) for t in tokens]
    except ValueError:
        raise ValueError(f"{where}: header must hold integers, got {' '.join(tokens)!r}") from None
    if any(v < 1 for v in values):
        raise ValueError(f"{where}: header values must be >= 1, got {' '.join(tokens)!r}")
    return (values[0], values[1]) if len(values) == 2 else (1, values[0])


def read_pairs(lfw_dir: Path, pairs_file: str = "pairs.txt") -> list[Pair]:
    """Parse an LFW pairs file under ``lfw_dir`` into pairs in file order.

    Raises ValueError naming the line for a malformed header or pair line, a mismatched
    pair naming one person twice, a matched pair of an image with itself, and for too
    few or too many pair lines. Blank lines are ignored. Image files are not opened here.
    """
    lfw_dir = Path(lfw_dir)
    source = lfw_dir / pairs_file
    numbered = [
        (number, line.split())
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1)
        if line.strip()
    ]
    if not numbered:
        raise ValueError(f"{source}: file is empty")
    header_line, header = numbered[0]
    n_folds, per_class = _parse_header(header, f"{source}:{header_line}")
    body = numbered[1:]
    expected = n_folds * 2 * per_class
    if len(body) != expected:
        raise ValueError(
            f"{source}: header (line {header_line}) announces {n_folds} fold(s) x "
            f"{per_class} matched + {per_class} mismatched = {expected} pairs, "
            f"but {len(body)} pair lines follow"
        )

    pairs: list[Pair] = []
    for index, (number, tokens) in enumerate(body):
        fold, offset = divmod(index, 2 * per_class)
        same = offset < per_class
        where = f"{source}:{number}"
        if same:
            if len(tokens) != 3:
                raise ValueError(
                    f"{where}: expected a matched pair 'name n1 n2' (fold {fold}), "
                    f"got {len(tokens)} field(s): {' '.join(tokens)!r}"
                )
            name, t1, t2 = tokens
            n1, n2 = _image_number(t1, where), _image_number(t2, where)
            if n1 == n2:
                raise ValueError(f"{where}: matched pair uses image {n1} of {name} twice")
            pairs.append(
                Pair(image_path(lfw_dir, name, n1), image_path(lfw_dir, name, n2), True, fold)
            )
        else:
            if len(tokens) != 4:
                raise ValueError(
                    f"{where}: expected a mismatched pair 'name1 n1 name2 n2' (fold {fold}), "
                    f"got {len(tokens)} field(s): {' '.join(tokens)!r}"
                )
            name1, t1, name2, t2 = tokens
            n1, n2 = _image_number(t1, where), _image_number(t2, where)
            if name1 == name2:
                raise ValueError(f"{where}: mismatched pair names the same person {name1!r} twice")
            pairs.append(
                Pair(image_path(lfw_dir, name1, n1), image_path(lfw_dir, name2, n2), False, fold)
            )
    return pairs
