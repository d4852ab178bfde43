"""Regenerate docs/accuracy.md: every model on every labelled collection in ../shared/datasets.

    .venv/bin/python bench/accuracy_table.py [--out docs/accuracy.md] [--configs arcface:scrfd,dlib:scrfd,dlib:dlib]
        [--datasets lfw,orl,yale,celeba_subset,deepface_testset,faceapi_bbt] [--no-track]

Each (model, detector, dataset) is one ``facegate eval dataset`` evaluation (the same code,
``facegate.modelops.jobs.evaluate_dataset_job``), recorded in MLflow unless ``--no-track``; LFW
also gets the official View 2 10-fold accuracy (``facegate eval lfw``). Templates are cached in
``out/accuracy/`` (LFW: ``out/lfw_all_<model>.npz`` when the detector is scrfd), so a rerun
only recomputes the metrics.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
DEFAULT_DATASETS = "lfw,orl,yale,celeba_subset,deepface_testset,faceapi_bbt"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}")


def pct(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "accuracy.md")
    parser.add_argument("--configs", default="arcface:scrfd,dlib:scrfd,dlib:dlib", help="model:detector, comma-separated")
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "out")
    parser.add_argument("--far", type=float, default=1e-3, help="FAR of the operating threshold")
    parser.add_argument("--no-track", action="store_true", help="Do not record MLflow runs.")
    args = parser.parse_args()

    from facegate.engine import get_engine
    from facegate.evaluation.verification import evaluate_lfw
    from facegate.modelops.jobs import embed_path, evaluate_dataset_job
    from facegate.modelops.tracking import tracking_uri

    started = time.perf_counter()
    rows: list[dict] = []
    conditions: dict[str, dict] = {}
    lfw_kfold: dict[str, dict] = {}
    calibrations: set[str] = set()
    for config in args.configs.split(","):
        model, detector = config.split(":")
        for name in args.datasets.split(","):
            root = DATASETS / name
            if not root.exists():
                print(f"skip {name}: {root} not found", flush=True)
                continue
            if name == "lfw" and detector == "scrfd":
                cache = args.cache_dir / f"lfw_all_{model}.npz"
            else:
                cache = args.cache_dir / "accuracy" / f"{name}_{model}_{detector}.npz"
            t0 = time.perf_counter()
            embedded = embed_path(root, model, detector, cache=cache)
            job = evaluate_dataset_job(
                root, model, detector, out_dir=args.cache_dir / "accuracy" / f"{name}_{model}_{detector}",
                far=args.far, track=not args.no_track, embedded=embedded,
            )
            e = job.evaluation
            calibrations.add(e.operating_point["calibration"])
            row = {"dataset": name, "model": model, "detector": detector, **e.headline(), "images": e.images,
                   "identities": e.identities, "genuine": e.pairs["genuine"], "impostor": e.pairs["impostor"],
                   "impostor_total": e.pairs["impostor_total"], "fallback_detail": e.fallbacks,
                   "op": e.operating_point, "dir": e.open_set.get("dir_at_fpir", {}).get("1e-01")}
            if name == "lfw":
                report, _ = evaluate_lfw(get_engine(model, detector), root, cache=cache)
                lfw_kfold[config] = report["kfold"]
                row["kfold"] = report["kfold"]
            if e.by_condition:
                conditions[f"{name} {model}+{detector}"] = e.by_condition
            rows.append(row)
            print(f"{name} {model}+{detector}: AUC {row['auc']:.5f}, EER {pct(row['eer'])}, TAR@1e-3 "
                  f"{pct(row['tar_at_far_1e-3'])}{'' if row['tar_at_far_1e-3_resolvable'] else ' (unresolvable)'}, "
                  f"rank-1 {pct(row['rank1'])}, fall-backs {row['fallbacks']} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = "?"
    lines = [
        "# Accuracy",
        "",
        "Generated by `.venv/bin/python bench/accuracy_table.py` (regenerate with the same command; "
        "`facegate eval dataset PATH` gives the full report, plots included, for one collection).",
        "",
        f"* date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, commit {commit}, "
        f"{time.perf_counter() - started:.0f} s",
        f"* machine: {machine()}",
        f"* data: `../shared/datasets` (see its SOURCES.md); operating threshold from calibration "
        f"{', '.join(sorted(calibrations))} at FAR {args.far:g}",
        f"* runs recorded in MLflow: {'no' if args.no_track else tracking_uri()}",
        "",
        "How to read it: every genuine pair (two photos of one person) and every impostor pair (a seeded "
        "sample of 1,000,000 where there are more) is scored. **TAR @ FAR 1e-3** is flagged *unresolvable* "
        "when fewer than 10,000 impostor pairs exist (10/FAR): the number then rests on fewer than ten "
        "impostors and says little about that FAR. **Rank-1**: closed-set identification with the first photo "
        "of each person as the gallery and every other photo as a probe. **Fall-backs**: photos where no face "
        "was found at the normal detector threshold (`low_score`: found at 0.3; `center_crop`: none found, "
        "the centre of the image was embedded); they are kept in the numbers, never dropped.",
        "",
        "| dataset | model + detector | images / people | genuine / impostor pairs | AUC | EER | TAR @ FAR 1e-3 | "
        "rank-1 | DIR @ FPIR 1e-1 | fall-backs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        tar = pct(r["tar_at_far_1e-3"]) + ("" if r["tar_at_far_1e-3_resolvable"] else " ⚠ unresolvable")
        fb = ", ".join(f"{k} {v}" for k, v in r["fallback_detail"].items()) or "0"
        d = r["dir"]
        dir_text = "–" if d is None else pct(d["dir"]) + ("" if d["resolvable"] else " ⚠")
        lines.append(
            f"| {r['dataset']} | {r['model']} + {r['detector']} | {r['images']} / {r['identities']} | "
            f"{r['genuine']:,} / {r['impostor']:,}{'*' if r['impostor'] < r['impostor_total'] else ''} | "
            f"{r['auc']:.5f} | {pct(r['eer'])} | {tar} | {pct(r['rank1'])} | {dir_text} | {fb} |"
        )
    lines += ["", "\\* seeded sample of the impostor pairs. ⚠ on DIR: fewer than 10/FPIR stranger probes.", ""]
    if lfw_kfold:
        lines += ["## LFW View 2 (official protocol)", "",
                  "| model + detector | 10-fold accuracy (threshold from the other 9 folds) |", "|---|---|"]
        for config, k in lfw_kfold.items():
            lines.append(f"| {config.replace(':', ' + ')} | {k['mean'] * 100:.2f}% ± {k['std'] * 100:.2f} |")
        lines.append("")
    lines += ["## At the operating threshold", "",
              f"The service's threshold at FAR {args.far:g}, applied to each collection's pairs (precision depends on "
              "the genuine:impostor ratio, so it is not comparable across collections). The shipped calibrations were "
              "measured on LFW with the SCRFD detector; rows with the dlib detector use them unchanged.", "",
              "| dataset | model + detector | threshold | FAR | FRR | accuracy | F1 |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        op = r["op"]
        lines.append(f"| {r['dataset']} | {r['model']} + {r['detector']} | {op['threshold']:.4f} | {pct(op['far'], 3)} | "
                     f"{pct(op['frr'])} | {pct(op['accuracy'])} | {op['f1']:.3f} |")
    lines.append("")
    if conditions:
        names = sorted({c for table in conditions.values() for c in table})
        lines += ["## Yale by condition", "",
                  f"Genuine pairs involving a photo of the condition, TAR at the operating threshold (FAR {args.far:g}).", "",
                  "| condition | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
        for c in names:
            cells = []
            for table in conditions.values():
                row = table.get(c)
                cells.append("–" if row is None else f"{pct(row['tar'], 1)} ({row['genuine_pairs']} pairs)")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
