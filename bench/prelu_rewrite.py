"""The PRelu rewrite (facegate/models/graph_rewrite.py) against the shipped graphs.

Each network with PRelu runs as shipped and rewritten, in turns, in one process, with the same
thread settings as FaceGate's sessions, so machine noise falls on both alike. Prints per-run
p50/p10 in ms, the ratio, and the largest output difference on the same input.

    .venv/bin/python bench/prelu_rewrite.py [--runs 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import onnxruntime as ort

from facegate.models.graph_rewrite import rewrite_prelu
from facegate.models.registry import verified_path

NETWORKS = {"arcface_mbf": (1, 3, 112, 112), "landmark_2d106": (1, 3, 192, 192)}


def session(model: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as FaceGate's
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, {args.threads} intra-op threads, "
          f"onnxruntime {ort.__version__}")
    for key, shape in NETWORKS.items():
        shipped = verified_path(key).read_bytes()
        rewritten, count = rewrite_prelu(shipped)
        sessions = {"shipped": session(shipped, args.threads), "rewritten": session(rewritten, args.threads)}
        feed = np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)
        name = sessions["shipped"].get_inputs()[0].name
        outputs = {k: s.run(None, {name: feed}) for k, s in sessions.items()}
        diff = max(float(np.abs(a - b).max()) for a, b in zip(outputs["shipped"], outputs["rewritten"], strict=True))
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(10):  # warm-up
            for s in sessions.values():
                s.run(None, {name: feed})
        for _ in range(args.runs):
            for k, s in sessions.items():
                start = time.perf_counter()
                s.run(None, {name: feed})
                times[k].append((time.perf_counter() - start) * 1000)
        p50 = {k: float(np.median(v)) for k, v in times.items()}
        p10 = {k: float(np.percentile(v, 10)) for k, v in times.items()}
        print(f"{key} {shape[2]}x{shape[3]}: {count} PRelu rewritten; "
              f"shipped p50 {p50['shipped']:.2f} ms (p10 {p10['shipped']:.2f}), "
              f"rewritten p50 {p50['rewritten']:.2f} ms (p10 {p10['rewritten']:.2f}); "
              f"x{p50['shipped'] / p50['rewritten']:.2f} faster; largest output difference {diff:.1e}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
