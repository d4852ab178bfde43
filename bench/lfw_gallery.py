"""The LFW open-set experiment over HTTP: enroll people, identify them and strangers.

Usage (from the repository root; needs the LFW photos in ../shared/datasets/lfw)::

    .venv/bin/python bench/lfw_gallery.py --backend sqlite                  # every eligible person
    .venv/bin/python bench/lfw_gallery.py --backend postgresql --people 20 --strangers 50   # a quick run

1. Enroll: every LFW person with at least ``--min-photos`` (4) photos (``--people N`` takes N of
   them, evenly spaced in name order) is enrolled through the enroll endpoint with their first
   two photos in file-name order, real JPEGs, one request per person, at the gallery's default
   policy (quality minimum, cross-match refusal). Each photo is accepted or rejected on its
   own; the rejections are counted by code (``poor_quality``, ``no_face``, ``many_faces``,
   ``matches_other_subject``...). A person whose photos were all rejected is not enrolled and
   is counted apart.
2. Mated searches: every other photo of each enrolled person is sent to the identify endpoint.
   For the portrait's face (the largest near the centre, the engine's own rule, when the photo
   holds several): rank-1 (the best candidate is the person, whatever the threshold), a correct
   match at the default threshold, a false reject (``unknown``, or no face found), or a wrong
   person matched. Photos of people whose enrollment failed are searched too, counted apart.
3. Non-mated searches: ``--strangers`` (1,000) photos of LFW people never enrolled (those with
   fewer than ``--min-photos`` photos, every k-th photo in path order, so the same photos each
   run): the share returned as unknown (goal: at least 99.9%), and every false match listed.

The thresholds are the service's own (default calibration, the gallery's target FPIR for its
size); the run prints them with the score distributions they cut.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _harness import DEFAULT_LFW, Backends, http_server, load_warning, main_face

from facegate.security import SYSTEM

GALLERY = "lfw"


def lfw_people(root: Path) -> dict[str, list[Path]]:
    if not root.exists():
        raise SystemExit(f"{root} not found: pass --lfw PATH")
    people = {}
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if photos:
            people[person.name] = photos
    return people


def evenly(items: list, n: int) -> list:
    if n <= 0 or n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def image_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.height, im.width


def search(fg, path: Path) -> dict:
    """One identify request; the portrait face's outcome."""
    data = path.read_bytes()
    started = time.perf_counter()
    result = fg.identify(GALLERY, (path.name, data))
    ms = (time.perf_counter() - started) * 1000
    out = {"photo": f"{path.parent.name}/{path.name}", "ms": ms, "faces": len(result.faces),
           "threshold": result.threshold, "templates": result.gallery_templates}
    if not result.faces:
        out.update(decision="no_face", subject=None, score=None, top=None)
        return out
    face = result.faces[main_face(result.faces, *image_size(data))]
    out.update(decision=face.decision, subject=face.subject, score=face.score,
               top=face.candidates[0].subject if face.candidates else None)
    return out


def summary(scores: list[float]) -> str:
    if not scores:
        return "-"
    a = np.asarray(scores)
    return (f"min {a.min():.3f}, p5 {np.percentile(a, 5):.3f}, median {np.median(a):.3f}, "
            f"p95 {np.percentile(a, 95):.3f}, p99 {np.percentile(a, 99):.3f}, max {a.max():.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    ap.add_argument("--people", type=int, default=0, help="enroll only N of the eligible people (0: all)")
    ap.add_argument("--strangers", type=int, default=1000, help="photos of never-enrolled people (default: %(default)s)")
    ap.add_argument("--min-photos", type=int, default=4, help="photos a person needs to be enrolled (default: %(default)s)")
    ap.add_argument("--enroll-photos", type=int, default=2, help="photos enrolled per person (default: %(default)s)")
    ap.add_argument("--lfw", type=Path, default=DEFAULT_LFW, help="LFW photos (default: %(default)s)")
    ap.add_argument("--workdir", type=Path, help="keep the database here (default: a temporary folder, removed)")
    ap.add_argument("--json", type=Path, help="also write every figure and outcome to this JSON file")
    args = ap.parse_args()
    if args.min_photos <= args.enroll_photos:
        raise SystemExit("--min-photos must exceed --enroll-photos: each person needs photos left to search with")

    from facegate.client import FaceGateClient

    print(f"machine: {load_warning()}")
    people = lfw_people(args.lfw)
    eligible = [p for p, photos in people.items() if len(photos) >= args.min_photos]
    chosen = evenly(eligible, args.people)
    outsiders = [photo for p, photos in people.items() if len(photos) < args.min_photos for photo in photos]
    strangers = evenly(outsiders, args.strangers)
    print(f"LFW: {len(people):,} people; {len(eligible)} with >= {args.min_photos} photos, {len(chosen)} enrolled here; "
          f"{len(strangers)} stranger photos from {len(outsiders):,} photos of people with fewer")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facegate-lfw-"))
    backends = Backends(workdir)
    report: dict = {"backend": args.backend, "people": len(chosen), "eligible": len(eligible)}
    try:
        service = backends.service(args.backend, "lfw")
        service.create_gallery(GALLERY, principal=SYSTEM)
        secret = service.create_api_key("lfw-bench", ["admin"], principal=SYSTEM).secret
        with http_server(service) as url, FaceGateClient(url, api_key=secret, timeout=300) as fg:
            # -- 1. enroll ----------------------------------------------------------------------
            started = time.perf_counter()
            codes: collections.Counter = collections.Counter()
            statuses: collections.Counter = collections.Counter()
            rejections, enrolled, not_enrolled, partly = [], [], [], 0
            for person in chosen:
                photos = people[person][: args.enroll_photos]
                r = fg.enroll(GALLERY, person, photos, display_name=person.replace("_", " "))
                for item in r.items:
                    statuses[item.status] += 1
                    if item.status != "accepted":
                        codes[item.code or item.status] += 1
                        rejections.append({"person": person, "photo": item.image, "status": item.status,
                                           "code": item.code, "reason": item.reason})
                (enrolled if r.accepted else not_enrolled).append(person)
                partly += 0 < r.accepted < len(photos)
            enroll_s = time.perf_counter() - started
            print(f"\nenroll: {len(chosen)} people, {sum(statuses.values())} photos in {enroll_s:.0f} s: "
                  f"{statuses['accepted']} accepted, {statuses['rejected']} rejected, {statuses['skipped']} skipped")
            print(f"  enrolled: {len(enrolled)} people ({partly} with one photo only); "
                  f"not enrolled (every photo rejected): {len(not_enrolled)}")
            for code, n in codes.most_common():
                print(f"  {code}: {n}")
            for r in rejections[:10]:
                print(f"    {r['person']}/{r['photo']}: {r['code'] or r['status']}: {r['reason']}")
            if len(rejections) > 10:
                print(f"    ... {len(rejections) - 10} more (see --json)")

            # -- 2. mated searches ------------------------------------------------------------
            started = time.perf_counter()
            mated = []
            for person in enrolled:
                for path in people[person][args.enroll_photos:]:
                    out = search(fg, path)
                    out["person"] = person
                    out["outcome"] = ("no_face" if out["decision"] == "no_face" else
                                      "unknown" if out["decision"] == "unknown" else
                                      "correct" if out["subject"] == person else "wrong_person")
                    mated.append(out)
            orphans = []
            for person in not_enrolled:
                for path in people[person][args.enroll_photos:]:
                    out = search(fg, path)
                    out["person"] = person
                    orphans.append(out)
            mated_s = time.perf_counter() - started
            n = len(mated)
            outcome = collections.Counter(m["outcome"] for m in mated)
            rank1 = sum(m["top"] == m["person"] for m in mated)
            threshold = mated[0]["threshold"] if mated else None
            print(f"\nmated searches: {n} photos of {len(enrolled)} enrolled people in {mated_s:.0f} s")
            if n:
                print(f"  rank-1 (best candidate is the person, any score): {rank1}/{n} = {rank1 / n:.4f}")
                print(f"  matched correctly at the threshold: {outcome['correct']}/{n} = {outcome['correct'] / n:.4f}")
                frr = n - outcome["correct"]
                print(f"  false rejects (unknown, wrong person or no face): {frr}/{n} = {frr / n:.4f} "
                      f"(unknown {outcome['unknown']}, wrong person {outcome['wrong_person']}, no face {outcome['no_face']})")
                genuine = [m["score"] for m in mated if m["score"] is not None and m["top"] == m["person"]]
                print(f"  scores of the right person: {summary(genuine)}")
            if orphans:
                matched = sum(o["decision"] == "match" for o in orphans)
                print(f"  photos of the people not enrolled ({len(not_enrolled)}): {len(orphans)}, "
                      f"returned unknown {len(orphans) - matched}, matched someone {matched}")

            # -- 3. non-mated searches ----------------------------------------------------------
            started = time.perf_counter()
            nonmated = [search(fg, path) for path in strangers]
            strangers_s = time.perf_counter() - started
            m = len(nonmated)
            false_matches = [s for s in nonmated if s["decision"] == "match"]
            no_face = sum(s["decision"] == "no_face" for s in nonmated)
            unknown = m - len(false_matches)
            print(f"\nnon-mated searches: {m} photos of people never enrolled in {strangers_s:.0f} s")
            if m:
                print(f"  returned unknown: {unknown}/{m} = {unknown / m:.4f} (goal >= 0.999; {no_face} had no face found)")
                print(f"  false matches: {len(false_matches)} (FPIR {len(false_matches) / m:.4f})")
                for s in false_matches[:20]:
                    print(f"    {s['photo']} -> {s['subject']} at {s['score']:.3f}")
                print(f"  best scores of strangers: {summary([s['score'] for s in nonmated if s['score'] is not None])}")
                threshold = threshold or nonmated[0]["threshold"]
            if threshold is not None:
                print(f"\nthreshold {threshold.threshold:.4f} for a gallery of {(mated or nonmated)[0]['templates']:,} "
                      f"templates: target FPIR {threshold.target_rate:g} per search -> {threshold.per_comparison_far:.3g} "
                      f"per comparison{'' if threshold.resolvable else ' (beyond what the calibration sample resolves: extrapolated)'}; "
                      f"calibration: {threshold.calibration}")
            ms = [x["ms"] for x in mated + nonmated]
            if ms:
                print(f"identify latency over HTTP: p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms")
            print(f"machine after the run: {load_warning()}")

            report.update({
                "enroll": {"photos": dict(statuses), "codes": dict(codes), "enrolled": len(enrolled),
                           "not_enrolled": not_enrolled, "partly_enrolled": partly, "rejections": rejections,
                           "seconds": enroll_s},
                "mated": {"searches": n, "rank1": rank1, "outcomes": dict(outcome),
                          "rank1_rate": rank1 / n if n else None,
                          "false_reject_rate": (n - outcome["correct"]) / n if n else None,
                          "orphans": len(orphans), "orphans_matched": sum(o["decision"] == "match" for o in orphans)},
                "nonmated": {"searches": m, "unknown": unknown, "no_face": no_face,
                             "unknown_rate": unknown / m if m else None,
                             "false_matches": [{k: s[k] for k in ("photo", "subject", "score")} for s in false_matches]},
                "threshold": threshold.model_dump() if threshold is not None else None,
                "searches": [{k: v for k, v in x.items() if k != "threshold"} for x in mated + orphans + nonmated],
            })
    finally:
        backends.close()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
