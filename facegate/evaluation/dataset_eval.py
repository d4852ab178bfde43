"""Accuracy of one model on a labelled face collection: verification, identification, breakdowns.

Pairs: every genuine pair (two images of one person) and a seeded uniform sample of impostor
pairs (all of them when there are fewer than the cap). Verification metrics come from
:mod:`facegate.evaluation.metrics`; a FAR is only *resolved* when at least
``MIN_PAIRS_PER_FAR / far`` impostor pairs were scored (with fewer, the threshold there rests
on a handful of pairs), and every unresolved number is flagged rather than dropped.

Identification is measured from the same templates: closed-set rank-k with one gallery image
per person (the first by path) and every other image as a probe, and open-set DIR at a FPIR
with a seeded share of the people left out of the gallery as strangers.

Unreadable images are kept (they score -1 against everything, as in ``eval lfw``), and the
detector's fall-backs are counted, so a collection the detector struggles with cannot look
better than it is.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facegate.calibration import Calibration, threshold_at_far
from facegate.evaluation.datasets import EmbeddedSet
from facegate.evaluation.metrics import eer, roc, roc_auc, tar_at_far

REPORT_FARS: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)
REPORT_FPIRS: tuple[float, ...] = (1e-1, 1e-2)
MIN_PAIRS_PER_FAR = 10  # a FAR needs >= 10 / FAR impostor pairs to be shown
DEFAULT_MAX_IMPOSTORS = 1_000_000
QUALITY_BINS = 4

# Yale Faces: subjectNN.<condition>, no file extension.
_YALE = re.compile(r"^subject\d+\.(?P<condition>[a-z]+)$", re.IGNORECASE)
YALE_CONDITIONS = (
    "centerlight", "glasses", "noglasses", "happy", "sad", "sleepy", "surprised", "wink", "leftlight",
    "rightlight", "normal",
)


def condition_of(path: str) -> str | None:
    """The capture condition a file name encodes (Yale: ``subject01.glasses``), else None."""
    match = _YALE.match(Path(path).name)
    if match and match.group("condition").lower() in YALE_CONDITIONS:
        return match.group("condition").lower()
    return None


@dataclass
class PairSet:
    """Index pairs into an EmbeddedSet with their scores; genuine first, then impostors."""

    first: np.ndarray
    second: np.ndarray
    scores: np.ndarray
    labels: np.ndarray  # 1 genuine, 0 impostor
    impostor_total: int  # impostor pairs that exist, sampled or not

    @property
    def n_genuine(self) -> int:
        return int(self.labels.sum())

    @property
    def n_impostor(self) -> int:
        return int(len(self.labels) - self.labels.sum())


def _score(embedded: EmbeddedSet, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    scores = np.einsum("ij,ij->i", embedded.vectors[i], embedded.vectors[j]).astype(np.float64)
    bad = embedded.fallbacks == "unreadable"
    scores[bad[i] | bad[j]] = -1.0
    return scores


def sample_impostor_pairs(ids: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct pairs (i < j) of images of different people, drawn uniformly with a
    seed, in (i, j) order. The caller makes sure at least ``count`` such pairs exist."""
    n = len(ids)
    rng = np.random.default_rng(seed)
    keys = np.zeros(0, dtype=np.int64)
    while len(keys) < count:
        need = int((count - len(keys)) * 1.3) + 1024
        x, y = rng.integers(0, n, need), rng.integers(0, n, need)
        ok = (x != y) & (ids[x] != ids[y])
        keys = np.unique(np.concatenate([keys, np.minimum(x[ok], y[ok]) * n + np.maximum(x[ok], y[ok])]))
    keys = np.sort(rng.permutation(keys)[:count])
    return keys // n, keys % n


def make_pairs(embedded: EmbeddedSet, max_impostors: int = DEFAULT_MAX_IMPOSTORS, seed: int = 0) -> PairSet:
    """Every genuine pair and up to ``max_impostors`` impostor pairs (seeded, without repeats)."""
    ids = np.asarray(embedded.identities)
    n = len(ids)
    order = np.argsort(ids, kind="stable")
    gi, gj = [], []
    boundaries = np.flatnonzero(np.r_[True, ids[order][1:] != ids[order][:-1], True])
    for start, stop in itertools.pairwise(boundaries):
        members = np.sort(order[start:stop])
        if len(members) > 1:
            a, b = np.triu_indices(len(members), k=1)
            gi.append(members[a])
            gj.append(members[b])
    genuine_i = np.concatenate(gi) if gi else np.zeros(0, np.int64)
    genuine_j = np.concatenate(gj) if gj else np.zeros(0, np.int64)
    impostor_total = n * (n - 1) // 2 - len(genuine_i)
    if impostor_total <= max_impostors:
        a, b = np.triu_indices(n, k=1)
        keep = ids[a] != ids[b]
        imp_i, imp_j = a[keep], b[keep]
    else:
        imp_i, imp_j = sample_impostor_pairs(ids, max_impostors, seed)
    first = np.concatenate([genuine_i, imp_i]).astype(np.int64)
    second = np.concatenate([genuine_j, imp_j]).astype(np.int64)
    labels = np.r_[np.ones(len(genuine_i), np.int64), np.zeros(len(imp_i), np.int64)]
    return PairSet(first, second, _score(embedded, first, second), labels, int(impostor_total))


def _rates_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    accepted = scores >= threshold
    genuine = labels == 1
    tp = int((accepted & genuine).sum())
    fp = int((accepted & ~genuine).sum())
    fn = int((~accepted & genuine).sum())
    tn = int((~accepted & ~genuine).sum())
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * precision * recall / (precision + recall) if tp and (precision + recall) else 0.0
    return {
        "threshold": float(threshold),
        "accuracy": (tp + tn) / len(scores),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "far": fp / (fp + tn) if fp + tn else math.nan,
        "frr": fn / (tp + fn) if tp + fn else math.nan,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def closed_set_identification(embedded: EmbeddedSet, ranks: tuple[int, ...] = (1, 5)) -> dict[str, Any]:
    """Rank-k hit rates: the first image (by path) of every person is the gallery, every other
    image of a person is a probe. Unreadable probes count as misses."""
    ids = np.asarray(embedded.identities)
    order = sorted(range(len(ids)), key=lambda i: (ids[i], embedded.paths[i]))
    gallery: dict[str, int] = {}
    probes: list[int] = []
    for i in order:
        if ids[i] not in gallery:
            gallery[ids[i]] = i
        else:
            probes.append(i)
    if not probes:
        return {"probes": 0, "gallery": len(gallery)}
    g_rows = np.array(list(gallery.values()))
    g_ids = ids[g_rows]
    p_rows = np.array(probes)
    sims = embedded.vectors[p_rows] @ embedded.vectors[g_rows].T
    bad = embedded.fallbacks == "unreadable"
    sims[:, bad[g_rows]] = -1.0
    column = {pid: k for k, pid in enumerate(g_ids.tolist())}
    correct_score = sims[np.arange(len(p_rows)), [column[x] for x in ids[p_rows].tolist()]]
    # Rank of the true identity: 1 + gallery entries scoring strictly higher.
    rank = 1 + (sims > correct_score[:, None]).sum(axis=1)
    rank[bad[p_rows]] = len(g_rows) + 1
    out: dict[str, Any] = {"probes": len(p_rows), "gallery": len(g_rows)}
    for k in ranks:
        out[f"rank{k}"] = float((rank <= k).mean())
    return out


def open_set_identification(
    embedded: EmbeddedSet, fpirs: tuple[float, ...] = REPORT_FPIRS, stranger_share: float = 1 / 3, seed: int = 0
) -> dict[str, Any]:
    """DIR (detection and identification rate) at each FPIR.

    A seeded ``stranger_share`` of the people are left out of the gallery: all their images
    are stranger probes. The rest enroll their first image; their other images are mated
    probes. The threshold at a FPIR is the score exceeded by that share of strangers' best
    matches; DIR is the share of mated probes whose best match is right and above it.
    """
    ids = np.asarray(embedded.identities)
    people = np.array(sorted(set(ids.tolist())))
    rng = np.random.default_rng(seed)
    n_strangers = round(len(people) * stranger_share)
    if n_strangers < 1 or len(people) - n_strangers < 2:
        return {"strangers": 0, "note": "too few people for an open-set split"}
    strangers = set(rng.permutation(people)[:n_strangers].tolist())
    order = sorted(range(len(ids)), key=lambda i: (ids[i], embedded.paths[i]))
    gallery: dict[str, int] = {}
    mated: list[int] = []
    stranger_rows: list[int] = []
    for i in order:
        if ids[i] in strangers:
            stranger_rows.append(i)
        elif ids[i] not in gallery:
            gallery[ids[i]] = i
        else:
            mated.append(i)
    g_rows = np.array(list(gallery.values()))
    g_ids = ids[g_rows]
    bad = embedded.fallbacks == "unreadable"

    def best(rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
        sims = embedded.vectors[np.array(rows)] @ embedded.vectors[g_rows].T
        sims[:, bad[g_rows]] = -1.0
        sims[bad[np.array(rows)], :] = -1.0
        top = sims.argmax(axis=1)
        return sims[np.arange(len(rows)), top], g_ids[top]

    out: dict[str, Any] = {
        "gallery": len(g_rows),
        "mated_probes": len(mated),
        "stranger_probes": len(stranger_rows),
        "strangers": n_strangers,
        "dir_at_fpir": {},
    }
    if not mated or not stranger_rows:
        return out
    s_best, _ = best(stranger_rows)
    m_best, m_id = best(mated)
    right = m_id == ids[np.array(mated)]
    ordered = np.sort(s_best)[::-1]
    for fpir in fpirs:
        threshold = threshold_at_far(ordered, fpir)
        out["dir_at_fpir"][f"{fpir:.0e}"] = {
            "dir": float((right & (m_best >= threshold)).mean()),
            "threshold": threshold,
            "achieved_fpir": float((s_best >= threshold).mean()),
            "resolvable": len(ordered) * fpir >= MIN_PAIRS_PER_FAR,
        }
    return out


@dataclass
class DatasetEvaluation:
    """Everything ``facegate eval dataset`` reports, JSON-ready via :meth:`to_dict`."""

    dataset: str
    model: str
    model_sha256: str
    detector: str
    images: int
    identities: int
    fallbacks: dict[str, int]
    pairs: dict[str, int]
    verification: dict[str, Any]
    operating_point: dict[str, Any]
    identification: dict[str, Any]
    open_set: dict[str, Any]
    by_condition: dict[str, dict[str, Any]]
    by_quality: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def headline(self) -> dict[str, Any]:
        """The handful of numbers the accuracy table and the MLflow metrics lead with."""
        t3 = self.verification["tar_at_far"].get("1e-03", {})
        return {
            "auc": self.verification["auc"],
            "eer": self.verification["eer"],
            "tar_at_far_1e-3": t3.get("tar"),
            "tar_at_far_1e-3_resolvable": t3.get("resolvable"),
            "rank1": self.identification.get("rank1"),
            "rank5": self.identification.get("rank5"),
            "fallbacks": int(sum(self.fallbacks.values())),
        }


def _bins_by_quality(
    embedded: EmbeddedSet, pairs: PairSet, threshold: float, bins: int = QUALITY_BINS
) -> list[dict[str, Any]]:
    """Genuine TAR/FRR and impostor FAR at the operating threshold per quality bin of the
    pair's worse image (quantile edges of the per-image quality, so bins hold similar counts)."""
    quality = np.asarray(embedded.quality, dtype=np.float64)
    pair_q = np.minimum(quality[pairs.first], quality[pairs.second])
    edges = np.unique(np.quantile(quality, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([quality.min(), quality.max() + 1e-9])
    which = np.clip(np.searchsorted(edges, pair_q, side="right") - 1, 0, len(edges) - 2)
    accepted = pairs.scores >= threshold
    genuine = pairs.labels == 1
    rows = []
    for b in range(len(edges) - 1):
        inside = which == b
        g = inside & genuine
        imp = inside & ~genuine
        rows.append(
            {
                "quality_low": float(edges[b]),
                "quality_high": float(edges[b + 1]),
                "genuine_pairs": int(g.sum()),
                "impostor_pairs": int(imp.sum()),
                "tar": float(accepted[g].mean()) if g.any() else math.nan,
                "frr": float((~accepted[g]).mean()) if g.any() else math.nan,
                "far": float(accepted[imp].mean()) if imp.any() else math.nan,
            }
        )
    return rows


def _by_condition(embedded: EmbeddedSet, pairs: PairSet, threshold: float) -> dict[str, dict[str, Any]]:
    """Genuine-pair TAR/FRR at the operating threshold per probe condition: a genuine pair
    counts under the condition of each of its two images (once when both share it)."""
    conditions = [condition_of(p) for p in embedded.paths]
    if not any(conditions):
        return {}
    genuine = pairs.labels == 1
    accepted = pairs.scores >= threshold
    out: dict[str, dict[str, Any]] = {}
    cond = np.array([c or "" for c in conditions])
    for name in sorted({c for c in conditions if c}):
        involved = genuine & ((cond[pairs.first] == name) | (cond[pairs.second] == name))
        if not involved.any():
            continue
        out[name] = {
            "images": int((cond == name).sum()),
            "genuine_pairs": int(involved.sum()),
            "tar": float(accepted[involved].mean()),
            "frr": float((~accepted[involved]).mean()),
            "mean_genuine_score": float(pairs.scores[involved].mean()),
        }
    return out


def evaluate_embedded(
    embedded: EmbeddedSet,
    calibration: Calibration,
    far: float = 1e-3,
    max_impostors: int = DEFAULT_MAX_IMPOSTORS,
    seed: int = 0,
    dataset: str = "",
    detector: str = "",
) -> tuple[DatasetEvaluation, PairSet]:
    """All metrics of one embedded collection; ``calibration`` supplies the operating
    threshold at ``far`` (the service's active calibration, so the numbers are the ones
    a deployment would see)."""
    pairs = make_pairs(embedded, max_impostors, seed)
    if pairs.n_genuine == 0 or pairs.n_impostor == 0:
        raise ValueError(f"{dataset}: need at least two people and one person with two images")
    s, y = pairs.scores, pairs.labels
    rate, rate_threshold = eer(s, y)
    tar = {}
    notes: list[str] = []
    for target in REPORT_FARS:
        point = asdict(tar_at_far(s, y, target))
        point["resolvable"] = pairs.n_impostor * target >= MIN_PAIRS_PER_FAR
        point["impostors_needed"] = math.ceil(MIN_PAIRS_PER_FAR / target)
        tar[f"{target:.0e}"] = point
        if not point["resolvable"]:
            notes.append(
                f"FAR {target:.0e} is unresolvable: {pairs.n_impostor:,} impostor pairs, "
                f"{point['impostors_needed']:,} needed (10/FAR); its TAR is shown but flagged"
            )
    curve = roc(s, y)
    verification = {
        "auc": roc_auc(s, y),
        "eer": rate,
        "eer_threshold": rate_threshold,
        "tar_at_far": tar,
        "genuine_score_mean": float(s[y == 1].mean()),
        "impostor_score_mean": float(s[y == 0].mean()),
        "roc_points": len(curve.far),
    }
    threshold = calibration.threshold_at(far)
    operating = {
        "far_target": far,
        "calibration": calibration.name,
        "calibration_source": calibration.source,
        "calibration_resolvable": calibration.resolvable(far),
        **_rates_at(s, y, threshold),
        "note": "precision depends on the genuine:impostor ratio of the sampled pairs",
    }
    ids = np.asarray(embedded.identities)
    fallbacks = Counter(str(f) for f in embedded.fallbacks if f)
    if pairs.n_impostor < pairs.impostor_total:
        notes.append(f"impostor pairs: a seeded sample of {pairs.n_impostor:,} of {pairs.impostor_total:,}")
    evaluation = DatasetEvaluation(
        dataset=dataset,
        model=embedded.model_id,
        model_sha256=embedded.model_sha256,
        detector=detector,
        images=len(embedded.paths),
        identities=len(set(ids.tolist())),
        fallbacks=dict(sorted(fallbacks.items())),
        pairs={"genuine": pairs.n_genuine, "impostor": pairs.n_impostor, "impostor_total": pairs.impostor_total},
        verification=verification,
        operating_point=operating,
        identification=closed_set_identification(embedded),
        open_set=open_set_identification(embedded, seed=seed),
        by_condition=_by_condition(embedded, pairs, threshold),
        by_quality=_bins_by_quality(embedded, pairs, threshold),
        notes=notes,
    )
    for key, point in evaluation.open_set.get("dir_at_fpir", {}).items():
        if not point["resolvable"]:
            notes.append(
                f"FPIR {key} is unresolvable with {evaluation.open_set['stranger_probes']} stranger probes "
                f"({math.ceil(MIN_PAIRS_PER_FAR / float(key))} needed)"
            )
    return evaluation, pairs
