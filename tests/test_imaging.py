"""Tests for facegate.imaging: every real dataset image decodes, and bad input gets a typed error."""

from __future__ import annotations

import io
import os
import struct
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from facegate.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
)
from facegate.imaging import ImageLimits, decode_image, image_sha256, load_image, read_image_bytes

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
NON_IMAGE_EXTS = {".txt", ".csv", ".xml", ".md", ".mp4", ".xsl"}
# The shipped defaults, spelled out so FACEGATE_* variables in the environment cannot change a test.
LIMITS = ImageLimits(max_bytes=20 * 1024 * 1024, max_pixels=50_000_000)


# --------------------------------------------------------------------------- helpers


def _photo(h: int = 120, w: int = 160) -> np.ndarray:
    """A smooth RGB test picture (gradients + a disc) that compresses like a photo."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (xx * 255 // max(w - 1, 1)).astype(np.uint8)
    img[..., 1] = (yy * 255 // max(h - 1, 1)).astype(np.uint8)
    img[..., 2] = np.where((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2, 220, 40)
    return img


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int) -> bytes:
    """A structurally valid PNG whose IHDR claims width x height but carries almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _check_rgb(arr: np.ndarray) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.uint8
    assert arr.ndim == 3 and arr.shape[2] == 3
    assert arr.shape[0] > 0 and arr.shape[1] > 0
    assert arr.flags.c_contiguous


# --------------------------------------------------------------------------- 1. real data


def test_every_dataset_image_decodes() -> None:
    """Every image file under ../shared/datasets decodes; the format is found by content.

    Non-images are skipped by extension only; names like Yale's ``subject01.glasses``
    (a condition, not an extension) and files with no extension must decode.
    """
    if not DATASETS.is_dir():
        pytest.skip("needs ../shared/datasets (real face data), not present")
    files = sorted(
        p
        for p in DATASETS.rglob("*")
        if p.is_file() and p.suffix.lower() not in NON_IMAGE_EXTS and not p.name.upper().startswith("README")
    )
    assert files, f"no candidate image files under {DATASETS}"

    t0 = time.perf_counter()
    failures: list[str] = []
    decoded = 0
    for path in files:
        try:
            arr = load_image(path, LIMITS)
            _check_rgb(arr)
            decoded += 1
        except (ImageError, AssertionError) as exc:
            failures.append(f"{path.relative_to(DATASETS)}: {type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - t0
    print(f"\ndecoded {decoded} images from {DATASETS} in {elapsed:.1f} s")

    assert not failures, f"{len(failures)} of {len(files)} files failed, e.g.:\n" + "\n".join(failures[:20])
    assert decoded == len(files)
    if (DATASETS / "lfw").is_dir():
        assert decoded > 9000, f"only {decoded} images decoded; lfw alone has 9,056"


# --------------------------------------------------------------------------- 2. bad input


def test_bad_inputs_raise_typed_errors(tmp_path: Path) -> None:
    jpeg = _encode(Image.fromarray(_photo(200, 200)), "JPEG", quality=90)
    rng = np.random.default_rng(12345)
    random_bytes = rng.bytes(4096)
    text_jpg = tmp_path / "holiday.jpg"
    text_jpg.write_text("This is not a photo, it is a shopping list.\neggs\nmilk\n")

    cases: list[tuple[str, bytes | Path, type[ImageError]]] = [
        ("zero bytes", b"", EmptyImageError),
        ("truncated JPEG", jpeg[: len(jpeg) // 2], CorruptImageError),
        ("random bytes", random_bytes, NotAnImageError),
        ("PNG claiming 30000x30000", _png_claiming(30000, 30000), ImageTooLargeError),
        ("text file named .jpg", text_jpg, NotAnImageError),
    ]
    for label, source, expected in cases:
        with pytest.raises(ImageError) as info:
            load_image(source, LIMITS)
        assert type(info.value) is expected, f"{label}: got {type(info.value).__name__}: {info.value}"
        assert str(info.value).strip(), f"{label}: empty message"
        assert info.value.message == str(info.value)


def test_bomb_message_names_dimensions_and_setting() -> None:
    with pytest.raises(ImageTooLargeError) as info:
        load_image(_png_claiming(30000, 30000), LIMITS)
    msg = str(info.value)
    assert "30000x30000" in msg and "900 MP" in msg and "50 MP" in msg
    assert "FACEGATE_MAX_IMAGE_PIXELS" in msg


def test_pixel_limit_checked_from_header_below_pillow_limit() -> None:
    # 8000x8000 = 64 MP: under Pillow's own bomb threshold (~89 MP), over ours (50 MP).
    with pytest.raises(ImageTooLargeError, match="8000x8000"):
        load_image(_png_claiming(8000, 8000), LIMITS)
    # A real image over a small custom limit.
    png = _encode(Image.fromarray(_photo(100, 100)), "PNG")
    with pytest.raises(ImageTooLargeError, match="10000 pixels"):
        load_image(png, ImageLimits(max_bytes=LIMITS.max_bytes, max_pixels=9999))
    assert load_image(png, ImageLimits(max_bytes=LIMITS.max_bytes, max_pixels=10000)).shape == (100, 100, 3)


def test_more_corrupt_inputs() -> None:
    png = _encode(Image.fromarray(_photo()), "PNG")
    jpeg = _encode(Image.fromarray(_photo()), "JPEG")
    gif = _encode(Image.fromarray(_photo()).convert("P"), "GIF")
    for label, data in [
        ("truncated PNG", png[: len(png) // 2]),
        ("PNG signature only", png[:12]),
        ("JPEG header only", jpeg[:20]),
        ("truncated GIF", gif[: len(gif) // 3]),
    ]:
        with pytest.raises(CorruptImageError) as info:
            load_image(data, LIMITS)
        assert str(info.value), label
    with pytest.raises(NotAnImageError):
        load_image(b"%PDF-1.4\n" + b"x" * 200, LIMITS)
    with pytest.raises(NotAnImageError, match="HEIC"):
        load_image(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, LIMITS)


def test_globals_left_alone() -> None:
    before_max = Image.MAX_IMAGE_PIXELS
    before_filters = list(warnings.filters)
    for data in (_png_claiming(30000, 30000), _png_claiming(10000, 10000), b"junk"):
        with pytest.raises(ImageError):
            load_image(data, LIMITS)
    assert Image.MAX_IMAGE_PIXELS == before_max
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert list(warnings.filters) == before_filters


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="file not found") as info:
        load_image(tmp_path / "nope.jpg", LIMITS)
    assert not isinstance(info.value, FileNotFoundError)
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path, LIMITS)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(EmptyImageError):
        load_image(empty, LIMITS)
    with pytest.raises(TypeError):
        load_image(12345, LIMITS)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- 3. formats


def test_webp_named_jpg(tmp_path: Path) -> None:
    img = _photo()
    path = tmp_path / "photo.jpg"
    path.write_bytes(_encode(Image.fromarray(img), "WEBP", lossless=True))
    out = load_image(path, LIMITS)
    _check_rgb(out)
    assert np.array_equal(out, img)


def test_gif_first_frame() -> None:
    frames = [Image.new("RGB", (30, 20), c).convert("P") for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = load_image(buf.getvalue(), LIMITS)
    _check_rgb(out)
    assert out.shape == (20, 30, 3)
    assert tuple(out[10, 15]) == (255, 0, 0)


def test_16bit_grey_png_keeps_range() -> None:
    grad = (np.arange(256, dtype=np.uint32) * 257).astype(np.uint16)  # 0..65535
    img16 = np.tile(grad, (8, 1))
    png = _encode(Image.fromarray(img16), "PNG")
    assert Image.open(io.BytesIO(png)).mode.startswith("I")
    out = load_image(png, LIMITS)
    _check_rgb(out)
    row = out[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.abs(row - np.arange(256)).max() <= 1
    assert len(np.unique(row)) > 250, "16-bit gradient was saturated/clipped"
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_16bit_rgb_png_keeps_range() -> None:
    grad = (np.arange(256, dtype=np.uint32) * 257).astype(np.uint16)
    bgr16 = np.zeros((4, 256, 3), np.uint16)
    bgr16[..., 2] = grad  # red channel in OpenCV's BGR order
    ok, enc = cv2.imencode(".png", bgr16)
    assert ok
    out = load_image(enc.tobytes(), LIMITS)
    _check_rgb(out)
    assert np.abs(out[0, :, 0].astype(int) - np.arange(256)).max() <= 1
    assert out[..., 1:].max() == 0


def test_rgba_composited_on_white() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent black
    rgba[:5] = (255, 0, 0, 255)  # opaque red top half
    rgba[5:, :5] = (0, 0, 0, 128)  # half-transparent black
    out = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"), LIMITS)
    _check_rgb(out)
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[9, 9]) == (255, 255, 255)
    assert all(abs(int(v) - 127) <= 2 for v in out[9, 0])


def test_la_and_palette_transparency() -> None:
    la = Image.fromarray(np.zeros((6, 6, 2), np.uint8), "LA")  # transparent black
    assert tuple(load_image(_encode(la, "PNG"), LIMITS)[0, 0]) == (255, 255, 255)
    p = Image.new("P", (6, 6), 0)
    p.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((0, 0), 1)
    data = _encode(p, "PNG", transparency=0)
    out = load_image(data, LIMITS)
    assert tuple(out[0, 0]) == (0, 255, 0)
    assert tuple(out[3, 3]) == (255, 255, 255)


def test_exif_rotated_jpeg(tmp_path: Path) -> None:
    img = np.zeros((20, 40, 3), np.uint8)  # 20 rows, 40 columns
    img[:, :20] = (255, 0, 0)  # left half red
    img[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "portrait.jpg"
    Image.fromarray(img).save(path, "JPEG", quality=95, exif=exif.tobytes())
    out = load_image(path, LIMITS)
    _check_rgb(out)
    assert out.shape == (40, 20, 3), "EXIF orientation not applied (dimensions should swap)"
    # Rotating clockwise puts the original left (red) half at the top.
    top, bottom = out[5, 10].astype(int), out[35, 10].astype(int)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_over_max_bytes(tmp_path: Path) -> None:
    data = _encode(Image.fromarray(_photo()), "PNG")
    small = ImageLimits(max_bytes=len(data) - 1, max_pixels=LIMITS.max_pixels)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLargeError, match="FACEGATE_MAX_IMAGE_BYTES"):
        load_image(path, small)
    with pytest.raises(ImageTooLargeError):
        read_image_bytes(path, small)
    with pytest.raises(ImageTooLargeError):
        load_image(data, small)
    assert load_image(path, ImageLimits(max_bytes=len(data), max_pixels=LIMITS.max_pixels)).shape == (120, 160, 3)


def test_file_without_extension(tmp_path: Path) -> None:
    img = _photo()
    for name in ("subject01", "subject01.glasses"):
        path = tmp_path / name
        path.write_bytes(_encode(Image.fromarray(img), "PNG"))
        out = load_image(path, LIMITS)
        assert np.array_equal(out, img)
    assert np.array_equal(load_image(str(tmp_path / "subject01"), LIMITS), img)


def test_grey_pgm_to_three_channels(tmp_path: Path) -> None:
    grey = _photo()[..., 0]
    path = tmp_path / "face.pgm"
    Image.fromarray(grey, "L").save(path, "PPM")
    assert path.read_bytes()[:2] == b"P5"
    out = load_image(path, LIMITS)
    _check_rgb(out)
    assert out.shape == (120, 160, 3)
    for c in range(3):
        assert np.array_equal(out[..., c], grey)


def test_other_modes_and_formats() -> None:
    img = _photo()
    pil = Image.fromarray(img)
    cases = {
        "CMYK JPEG": _encode(pil.convert("CMYK"), "JPEG", quality=95),
        "1-bit PNG": _encode(pil.convert("1"), "PNG"),
        "palette PNG": _encode(pil.convert("P"), "PNG"),
        "grey JPEG": _encode(pil.convert("L"), "JPEG"),
        "BMP": _encode(pil, "BMP"),
        "TIFF": _encode(pil, "TIFF"),
        "PPM": _encode(pil, "PPM"),
    }
    for label, data in cases.items():
        out = load_image(data, LIMITS)
        _check_rgb(out)
        assert out.shape == (120, 160, 3), label
    assert np.array_equal(load_image(cases["BMP"], LIMITS), img)
    cmyk = load_image(cases["CMYK JPEG"], LIMITS).astype(int)
    assert np.abs(cmyk - img.astype(int)).mean() < 8, "CMYK colours inverted or wrong"
    one_bit = load_image(cases["1-bit PNG"], LIMITS)
    assert set(np.unique(one_bit)) <= {0, 255}


def test_result_is_writable_copy_and_bytes_helpers(tmp_path: Path) -> None:
    data = _encode(Image.fromarray(_photo()), "PNG")
    out = decode_image(data, LIMITS)
    out[0, 0] = 0  # must not raise: callers draw on it
    path = tmp_path / "x.png"
    path.write_bytes(data)
    raw = read_image_bytes(path, LIMITS)
    assert raw == data
    assert image_sha256(raw) == image_sha256(data) and len(image_sha256(raw)) == 64
    assert np.array_equal(load_image(bytearray(data), LIMITS), load_image(os.fspath(path), LIMITS))


def test_limits_from_settings() -> None:
    from facegate.config import Settings

    limits = ImageLimits.from_settings(Settings(max_image_bytes=123, max_image_pixels=456))
    assert limits == ImageLimits(max_bytes=123, max_pixels=456)
    default = ImageLimits.from_settings()
    assert default.max_bytes > 0 and default.max_pixels > 0


# --------------------------------------------------------------------------- the decode budget

_PEAK_SCRIPT = """
import sys, threading, time
from facegate.imaging import ImageLimits, decode_image
data = open(sys.argv[1], "rb").read()
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
time.sleep(0.05)
base = rss(); peak = [base]; done = []
def watch():
    while not done:
        peak[0] = max(peak[0], rss()); time.sleep(0.0005)
t = threading.Thread(target=watch); t.start()
try:
    decode_image(data, ImageLimits(10**9, 10**9, int(sys.argv[2]), 2))
    outcome = "decoded"
except Exception as exc:
    outcome = type(exc).__name__
peak[0] = max(peak[0], rss()); done.append(1); t.join()
print(outcome, peak[0] - base)
"""


def _tiff(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode).save(buf, "TIFF") if mode else Image.fromarray(array).save(buf, "TIFF")
    return buf.getvalue()


def _decode_peak(tmp_path: Path, data: bytes, budget: int) -> tuple[str, int]:
    """Decode in a fresh process; (outcome, peak RSS growth in bytes) sampled every 0.5 ms."""
    import subprocess
    import sys

    path = tmp_path / "image.bin"
    path.write_bytes(data)
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path), str(budget)], capture_output=True,
                         text=True, cwd=root, timeout=120, check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "F", "I;16"])
def test_decode_cost_bounds_the_real_peak(tmp_path, mode):
    """The header-only estimate is at least the memory the decode really takes."""
    from facegate.imaging import decode_cost

    rng = np.random.default_rng(0)
    side = 2000
    arrays = {
        "RGB": lambda: (rng.random((side, side, 3)) * 255).astype(np.uint8),
        "RGBA": lambda: (rng.random((side, side, 4)) * 255).astype(np.uint8),
        "F": lambda: (rng.random((side, side)) * 1000).astype(np.float32),
        "I;16": lambda: (rng.random((side, side)) * 65535).astype(np.uint16),
    }
    data = _tiff(arrays[mode]())
    with Image.open(io.BytesIO(data)) as im:
        estimate = decode_cost(im.mode, im.size)
    outcome, peak = _decode_peak(tmp_path, data, 10**12)
    assert outcome == "decoded"
    assert peak <= estimate, (mode, peak, estimate)


def test_a_small_file_that_decodes_huge_is_refused_from_its_header(tmp_path):
    """A 7000x7000 float TIFF (a few hundred KB compressed) would take ~1.7 GB to decode: it is
    refused before any pixel is decoded, with a message that says why, and costs next to nothing."""
    buf = io.BytesIO()
    Image.new("F", (7000, 7000), 0.5).save(buf, "TIFF", compression="tiff_adobe_deflate")
    data = buf.getvalue()
    assert len(data) < 2 * 1024 * 1024
    with pytest.raises(ImageTooLargeError, match=r"7000x7000 in mode F: decoding it would take .* of memory"):
        decode_image(data, LIMITS)
    outcome, peak = _decode_peak(tmp_path, data, LIMITS.max_decoded_bytes)
    assert outcome == "ImageTooLargeError" and peak < 32 * 1024 * 1024, peak


def test_a_big_jpeg_is_decoded_at_a_reduced_scale_to_fit_the_budget():
    """libjpeg decodes at 1/2..1/8 scale for free: a 6000x4000 photo over the budget comes back
    at 3000x2000 instead of being refused; a PNG of the same size is refused."""
    big = cv2.resize(_photo(400, 600), (6000, 4000))
    ok, jpeg = cv2.imencode(".jpg", big)
    assert ok
    limits = ImageLimits(max_bytes=LIMITS.max_bytes, max_pixels=LIMITS.max_pixels, max_decoded_bytes=128 * 1024 * 1024)
    assert decode_image(jpeg.tobytes(), limits).shape == (2000, 3000, 3)
    unbounded = ImageLimits(LIMITS.max_bytes, LIMITS.max_pixels, max_decoded_bytes=10**12)
    assert decode_image(jpeg.tobytes(), unbounded).shape == (4000, 6000, 3)
    ok, png = cv2.imencode(".png", big[:, :, ::-1])
    with pytest.raises(ImageTooLargeError, match="FACEGATE_MAX_IMAGE_DECODE_BYTES"):
        decode_image(png.tobytes(), limits)


def test_at_most_n_decodes_run_at_once(monkeypatch):
    """Eight threads decoding at once: never more than ``max_concurrent`` inside the decoder."""
    import threading

    import facegate.imaging as imaging

    inside, most, lock = [0], [0], threading.Lock()
    real = imaging._to_rgb_array

    def counting(im):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)
        try:
            return real(im)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(imaging, "_to_rgb_array", counting)
    data = _encode(Image.fromarray(_photo()), "PNG")
    limits = ImageLimits(LIMITS.max_bytes, LIMITS.max_pixels, LIMITS.max_decoded_bytes, max_concurrent=2)
    threads = [threading.Thread(target=decode_image, args=(data, limits)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 2
