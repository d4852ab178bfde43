"""A simulated exam over HTTP: LFW people as students, genuine and impostor check-ins.

Usage (from the repository root; needs ../shared/datasets/lfw)::

    .venv/bin/python bench/exam_simulation.py                     # 200 students, SQLite
    .venv/bin/python bench/exam_simulation.py --backend postgresql --json out/exam_sim.json

1. Students: ``--students`` (200) LFW people with at least two photos, drawn with a fixed seed.
   The roster CSV names each student's first photo (file-name order) and goes through the
   roster endpoint, one photo per student. A student whose photo is refused (quality, no
   face, cross-match) is re-imported with their next photo while one remains that still
   leaves a probe; a student left without an enrolled photo is counted apart.
2. Genuine check-ins (session ``SIM-GENUINE``): each enrolled student checks in with their
   next photo. A false reject is any status but ``present``.
3. Impostor check-ins (session ``SIM-IMPOSTOR``): each student's id is presented with the
   check-in photo of the next student in the list (another enrolled person). A false accept is
   a verify score at or above the threshold. Every impostor attempt must show up as an alert
   tied to its attendance event.

Thresholds are the service's defaults (the gallery's verify FAR 1e-4 on the default
calibration); the run prints them and the score distributions they cut.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from facegate.security import SYSTEM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import DEFAULT_LFW, Backends, http_server, load_warning  # noqa: E402

GALLERY = "university"


def eligible_people(root: Path, students: int, seed: int) -> list[tuple[str, list[Path]]]:
    if not root.exists():
        raise SystemExit(f"{root} not found: pass --lfw PATH")
    people = []
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if len(photos) >= 2:
            people.append((person.name, photos))
    return random.Random(seed).sample(people, min(students, len(people)))


def run(lfw: Path, students: int, seed: int, backend: str, workdir: Path) -> dict:
    import httpx

    people = eligible_people(lfw, students, seed)
    ids = {name: f"S{i + 1:04d}" for i, (name, _) in enumerate(people)}
    backends = Backends(workdir)
    try:
        service = backends.service(backend, "exam")
        admin = service.create_api_key("admin", ["admin"], principal=SYSTEM).secret
        with http_server(service) as url, httpx.Client(base_url=url + "/api/v1", headers={"X-API-Key": admin}, timeout=300) as http:
            assert http.post("/galleries", json={"name": GALLERY}).status_code == 201
            # -- 1. roster, retrying refused students with their next photo ---------------------------
            t0 = time.perf_counter()
            enrolled_index: dict[str, int] = {}
            pending = {name: 0 for name, _ in people}
            photos = dict(people)
            rounds = 0
            refusals: collections.Counter = collections.Counter()
            while pending:
                rounds += 1
                lines = ["student_id,name,photo"]
                files = []
                for name, index in pending.items():
                    sid = ids[name]
                    lines.append(f"{sid},{name.replace('_', ' ')},{sid}.jpg")
                    files.append(("photos", (f"{sid}.jpg", photos[name][index].read_bytes(), "image/jpeg")))
                body = ("\n".join(lines) + "\n").encode()
                r = http.post(f"/galleries/{GALLERY}/roster", files=[("roster", ("roster.csv", body, "text/csv"))] + files)
                r.raise_for_status()
                failed = {e["student_id"] for e in r.json()["errors"]}
                for e in r.json()["errors"]:
                    refusals[e["code"]] += 1
                retry = {}
                for name, index in pending.items():
                    if ids[name] not in failed:
                        enrolled_index[name] = index
                    elif index + 2 < len(photos[name]):  # a next photo that still leaves a probe
                        retry[name] = index + 1
                pending = retry
            roster_s = time.perf_counter() - t0
            enrolled = [name for name, _ in people if name in enrolled_index]

            now = dt.datetime.now(dt.timezone.utc)
            for code in ("SIM-GENUINE", "SIM-IMPOSTOR"):
                r = http.post(f"/galleries/{GALLERY}/exam-sessions", json={
                    "code": code, "course": "LFW-101", "room": "simulated",
                    "starts_at": (now - dt.timedelta(minutes=1)).isoformat(),
                    "ends_at": (now + dt.timedelta(hours=6)).isoformat(),
                    # Expected: the whole roster, so a student whose photos were all refused (and
                    # who therefore has no subject) is still on the attendance list, as absent.
                    "students": [ids[name] for name, _ in people],
                })
                assert r.status_code == 201, r.text

            def checkin(code: str, sid: str, path: Path) -> dict:
                r = http.post(f"/galleries/{GALLERY}/exam-sessions/{code}/checkin",
                              data={"student_id": sid, "kiosk": "sim"}, files={"file": (path.name, path.read_bytes())})
                if r.status_code != 200:
                    return {"status": f"error:{r.json().get('code')}", "score": None, "threshold": None, "alerts": [],
                            "attendance_id": None}
                return r.json()

            # -- 2. genuine check-ins ------------------------------------------------------------------
            t0 = time.perf_counter()
            genuine = {}
            for name in enrolled:
                probe = photos[name][enrolled_index[name] + 1]
                genuine[name] = checkin("SIM-GENUINE", ids[name], probe)
            genuine_s = time.perf_counter() - t0
            # -- 3. impostor check-ins: the next student's check-in photo with this id -----------------
            t0 = time.perf_counter()
            impostor = {}
            for i, name in enumerate(enrolled):
                other = enrolled[(i + 1) % len(enrolled)]
                impostor[name] = (other, checkin("SIM-IMPOSTOR", ids[name], photos[other][enrolled_index[other] + 1]))
            impostor_s = time.perf_counter() - t0

            sessions = {s["code"]: s["id"] for s in http.get(f"/galleries/{GALLERY}/exam-sessions").json()}
            alerts, cursor = [], None
            while True:
                page = http.get(f"/galleries/{GALLERY}/alerts",
                                params={"session_id": sessions["SIM-IMPOSTOR"], "limit": 500, **({"cursor": cursor} if cursor else {})}).json()
                alerts += page["items"]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            csv_text = http.get(f"/galleries/{GALLERY}/exam-sessions/SIM-IMPOSTOR/attendance").text
    finally:
        backends.close()

    alerted_attendance = {a["details"].get("attendance_id") for a in alerts}
    g_status = collections.Counter(r["status"] for r in genuine.values())
    false_rejects = [(n, r["status"], r["score"]) for n, r in genuine.items() if r["status"] != "present"]
    false_accepts = [(n, o, r["score"]) for n, (o, r) in impostor.items() if r["score"] is not None and r["score"] >= r["threshold"]]
    impostor_alerted = [n for n, (_, r) in impostor.items() if r["attendance_id"] in alerted_attendance]
    i_alert_kinds = collections.Counter(k for _, r in impostor.values() for k in r["alerts"])
    g_scores = np.array([r["score"] for r in genuine.values() if r["score"] is not None])
    i_scores = np.array([r["score"] for _, r in impostor.values() if r["score"] is not None])
    thresholds = sorted({round(r["threshold"], 4) for r in genuine.values() if r["threshold"] is not None})
    return {
        "backend": backend,
        "students_drawn": len(people),
        "students_enrolled": len(enrolled),
        "not_enrolled": len(people) - len(enrolled),
        "roster_rounds": rounds,
        "roster_refusals_by_code": dict(refusals),
        "threshold": thresholds,
        "genuine_attempts": len(genuine),
        "genuine_status": dict(g_status),
        "false_rejects": len(false_rejects),
        "frr": len(false_rejects) / max(len(genuine), 1),
        "false_reject_cases": false_rejects,
        "impostor_attempts": len(impostor),
        "false_accepts": len(false_accepts),
        "far": len(false_accepts) / max(len(impostor), 1),
        "false_accept_cases": false_accepts,
        "impostor_attempts_with_alert": len(impostor_alerted),
        "impostor_alert_kinds": dict(i_alert_kinds),
        "impostor_session_alerts": len(alerts),
        "genuine_score": {"min": float(g_scores.min()), "p5": float(np.percentile(g_scores, 5)), "median": float(np.median(g_scores))} if g_scores.size else {},
        "impostor_score": {"max": float(i_scores.max()), "p95": float(np.percentile(i_scores, 95)), "median": float(np.median(i_scores))} if i_scores.size else {},
        "attendance_csv_rows": csv_text.count("\n") - 1,
        "seconds": {"roster": round(roster_s, 1), "genuine": round(genuine_s, 1), "impostor": round(impostor_s, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=Path, default=DEFAULT_LFW)
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--json", type=Path, help="Write the results here.")
    args = parser.parse_args()
    print(f"machine: {load_warning()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="facegate-exam-") as tmp:
        result = run(args.lfw, args.students, args.seed, args.backend, Path(tmp))
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)


if __name__ == "__main__":
    main()
