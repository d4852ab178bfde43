"""Plots (ROC, DET, score histograms) and a Markdown report for a dataset evaluation.

matplotlib runs on the Agg backend: no display, same bytes on a server as on a laptop.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from facegate.evaluation.dataset_eval import DatasetEvaluation, PairSet
from facegate.evaluation.metrics import roc


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc(pairs: PairSet, path: Path, title: str, threshold: float | None = None) -> Path:
    """TAR against FAR on a log FAR axis: the low-FAR end is where access control lives."""
    plt = _pyplot()
    curve = roc(pairs.scores, pairs.labels)
    floor = 1.0 / max(pairs.n_impostor, 1)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    ax.plot(np.maximum(curve.far, floor * 0.5), curve.tar, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlim(floor * 0.5, 1.0)
    ax.set_ylim(0, 1.01)
    ax.axvline(floor * 10, color="grey", ls=":", lw=1, label=f"resolvable FAR limit (10/{pairs.n_impostor:,})")
    if threshold is not None:
        far = float((pairs.scores[pairs.labels == 0] >= threshold).mean())
        tar = float((pairs.scores[pairs.labels == 1] >= threshold).mean())
        ax.plot([max(far, floor * 0.5)], [tar], "o", color="C3", label=f"operating point (t={threshold:.3f})")
    ax.set_xlabel("false accept rate (log)")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_det(pairs: PairSet, path: Path, title: str) -> Path:
    """FRR against FAR on normal-deviate axes (the DET curve): straight-ish lines, so models
    and error regions compare at a glance."""
    from scipy.stats import norm

    plt = _pyplot()
    curve = roc(pairs.scores, pairs.labels)
    lo = 0.5 / max(pairs.n_impostor, pairs.n_genuine, 1)
    far = np.clip(curve.far, lo, 1 - 1e-9)
    frr = np.clip(1 - curve.tar, lo, 1 - 1e-9)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    ax.plot(norm.ppf(far), norm.ppf(frr), lw=1.5)
    ticks = [t for t in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.5) if t >= lo]
    labels = [f"{t:.0e}".replace("e-0", "e-") if t < 0.1 else f"{t:g}" for t in ticks]
    for axis_ticks, axis_labels in ((ax.set_xticks, ax.set_xticklabels), (ax.set_yticks, ax.set_yticklabels)):
        axis_ticks(norm.ppf(ticks))
        axis_labels(labels, fontsize=8)
    ax.set_xlim(norm.ppf(lo), norm.ppf(0.6))
    ax.set_ylim(norm.ppf(lo), norm.ppf(0.6))
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("false reject rate")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_histogram(pairs: PairSet, path: Path, title: str, threshold: float | None = None) -> Path:
    """Genuine and impostor score densities, with the operating threshold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    real = pairs.scores[pairs.scores > -1.0]  # -1 marks an unreadable image, not a similarity
    low = float(real.min()) if len(real) else -1.0
    bins = np.linspace(low - 0.02 * (1.0 - low), 1.0, 80)
    ax.hist(pairs.scores[pairs.labels == 0], bins=bins, density=True, alpha=0.6, label=f"impostor ({pairs.n_impostor:,})")
    ax.hist(pairs.scores[pairs.labels == 1], bins=bins, density=True, alpha=0.6, label=f"genuine ({pairs.n_genuine:,})")
    if threshold is not None:
        ax.axvline(threshold, color="C3", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("similarity")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _pct(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value * 100:.{digits}f}%"


def _header(e: DatasetEvaluation, extra: dict[str, Any] | None) -> list[str]:
    hashed = f" (content hash `{extra['dataset_hash'][:16]}`)" if extra and "dataset_hash" in extra else ""
    sampled = e.pairs["impostor"] < e.pairs["impostor_total"]
    return [
        f"# FaceGate evaluation: {Path(e.dataset).name or e.dataset}",
        "",
        f"* dataset: `{e.dataset}`" + hashed,
        f"* model: **{e.model}** (sha256 `{e.model_sha256[:16]}`), detector **{e.detector}**",
        f"* {e.images} images of {e.identities} people; {e.pairs['genuine']:,} genuine pairs, "
        f"{e.pairs['impostor']:,} impostor pairs"
        + (f" (seeded sample of {e.pairs['impostor_total']:,})" if sampled else " (all)"),
        f"* detection fall-backs: {', '.join(f'{k}: {n}' for k, n in e.fallbacks.items()) or 'none'}",
        f"* generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


def _verification(e: DatasetEvaluation) -> list[str]:
    v = e.verification
    lines = [
        "## Verification",
        "",
        "| metric | value |",
        "|---|---|",
        f"| ROC AUC | {v['auc']:.5f} |",
        f"| EER | {_pct(v['eer'])} (threshold {v['eer_threshold']:.4f}) |",
    ]
    for key, point in v["tar_at_far"].items():
        flag = (
            ""
            if point["resolvable"]
            else f" **unresolvable**: {e.pairs['impostor']:,} impostor pairs < {point['impostors_needed']:,} (10/FAR)"
        )
        lines.append(f"| TAR @ FAR {key} | {_pct(point['tar'])} (threshold {point['threshold']:.4f}){flag} |")
    return lines


def _operating_point(e: DatasetEvaluation) -> list[str]:
    op = e.operating_point
    return [
        f"### At the operating threshold ({op['calibration']}, FAR {op['far_target']:g})",
        "",
        f"Threshold **{op['threshold']:.4f}** from calibration `{op['calibration']}`"
        + ("" if op["calibration_resolvable"] else " (extrapolated: below the calibration's measured range)")
        + f". Source: {op['calibration_source']}",
        "",
        "| accuracy | precision | recall (TAR) | F1 | FAR | FRR |",
        "|---|---|---|---|---|---|",
        (
            f"| {_pct(op['accuracy'])} | {_pct(op['precision'])} | {_pct(op['recall'])} | {op['f1']:.4f} | "
            f"{_pct(op['far'], 4)} | {_pct(op['frr'])} |"
        ),
        "",
        f"({op['note']}: {e.pairs['genuine']:,} genuine vs {e.pairs['impostor']:,} impostor.)",
    ]


def _identification(e: DatasetEvaluation) -> list[str]:
    lines = ["## Identification", ""]
    ident = e.identification
    if ident.get("probes"):
        lines.append(
            f"Closed set, one gallery image per person ({ident['gallery']} people), {ident['probes']} probes: "
            f"rank-1 **{_pct(ident['rank1'])}**, rank-5 {_pct(ident['rank5'])}."
        )
    osi = e.open_set
    if osi.get("dir_at_fpir"):
        lines += [
            "",
            (
                f"Open set: {osi['strangers']} people left out as strangers ({osi['stranger_probes']} probes), "
                f"{osi['gallery']} enrolled, {osi['mated_probes']} mated probes."
            ),
            "",
            "| FPIR | DIR | threshold | note |",
            "|---|---|---|---|",
        ]
        for key, point in osi["dir_at_fpir"].items():
            note = "" if point["resolvable"] else "unresolvable (fewer than 10/FPIR strangers)"
            lines.append(f"| {key} | {_pct(point['dir'])} | {point['threshold']:.4f} | {note} |")
    return lines


def _by_condition(e: DatasetEvaluation) -> list[str]:
    if not e.by_condition:
        return []
    lines = [
        "",
        "## By condition (genuine pairs involving an image of that condition, operating threshold)",
        "",
        "| condition | images | genuine pairs | TAR | FRR | mean genuine score |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in e.by_condition.items():
        lines.append(
            f"| {name} | {row['images']} | {row['genuine_pairs']} | {_pct(row['tar'])} | {_pct(row['frr'])} | "
            f"{row['mean_genuine_score']:.3f} |"
        )
    return lines


def _by_quality(e: DatasetEvaluation) -> list[str]:
    lines = [
        "",
        "## By quality (the worse image of the pair, quantile bins of the image quality score)",
        "",
        "| quality | genuine pairs | TAR | FRR | impostor pairs | FAR |",
        "|---|---|---|---|---|---|",
    ]
    for row in e.by_quality:
        lines.append(
            f"| {row['quality_low']:.2f}–{row['quality_high']:.2f} | {row['genuine_pairs']} | {_pct(row['tar'])} | "
            f"{_pct(row['frr'])} | {row['impostor_pairs']:,} | {_pct(row['far'], 4)} |"
        )
    return lines


def markdown_report(evaluation: DatasetEvaluation, plots: dict[str, str], extra: dict[str, Any] | None = None) -> str:
    """A self-contained Markdown summary; plots are linked by file name (same folder)."""
    e = evaluation
    lines = _header(e, extra) + [""] + _verification(e) + [""] + _operating_point(e) + [""]
    lines += _identification(e) + _by_condition(e) + _by_quality(e)
    if e.notes:
        lines += ["", "## Notes", ""] + [f"* {n}" for n in e.notes]
    lines += ["", "## Plots", ""] + [f"![{name}]({file})" for name, file in plots.items()]
    if extra and extra.get("mlflow_run_id"):
        lines += ["", f"MLflow run `{extra['mlflow_run_id']}`."]
    return "\n".join(lines) + "\n"


def write_report(
    evaluation: DatasetEvaluation, pairs: PairSet, out_dir: Path, extra: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write roc.png, det.png, scores.png, report.md and metrics.json into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    label = f"{Path(evaluation.dataset).name}: {evaluation.model} + {evaluation.detector}"
    threshold = evaluation.operating_point["threshold"]
    files = {
        "roc": plot_roc(pairs, out_dir / "roc.png", f"ROC, {label}", threshold),
        "det": plot_det(pairs, out_dir / "det.png", f"DET, {label}"),
        "scores": plot_histogram(pairs, out_dir / "scores.png", f"Scores, {label}", threshold),
    }
    report = out_dir / "report.md"
    report.write_text(markdown_report(evaluation, {k: p.name for k, p in files.items()}, extra))
    metrics = out_dir / "metrics.json"
    metrics.write_text(json.dumps({**evaluation.to_dict(), **(extra or {})}, indent=1, default=float))
    files["report"] = report
    files["metrics"] = metrics
    return files
