"""Turn untrusted image input (bytes or a path) into an RGB ``uint8`` array, or a typed error.

Everything that reaches the detector goes through :func:`load_image`, so this is the one
place that has to survive whatever users upload: wrong file names, odd colour modes,
truncated files, random bytes and decompression bombs. Each failure becomes one of the
:mod:`facegate.errors` image errors with a message that says what the person can do;
Pillow's own exceptions never leak out.

Behaviour choices:

* The format is sniffed from the content, never from the file name (phones and web
  downloads often save WebP or PNG as ``.jpg``; datasets such as Yale use names like
  ``subject01.glasses``).
* Only a small allow-list of formats is decoded (:data:`ALLOWED_FORMATS`). Pillow knows
  ~40 formats, some of which shell out (EPS runs Ghostscript) or are rarely fuzzed; a face
  photo never needs them, so they are not attack surface here.
* Transparent images are composited over white rather than having their alpha dropped:
  fully transparent pixels often hold arbitrary colour (usually black or junk) that would
  otherwise show up as a background or a fake edge; white is what a viewer shows, and a
  neutral background for the detector.
* 16-bit images are scaled (``v / 257``, so 65535 -> 255), never clipped, so a normal
  16-bit photo does not saturate to white.
* EXIF orientation is applied, so a portrait phone photo is upright, as the user saw it.
* Size limits are checked before decoding: bytes from ``stat`` before a file is read,
  pixels from the header before any pixel buffer is allocated, and the memory the decode
  will take (:func:`decode_cost`: size, mode, bit depth, bands) against a budget. A JPEG
  over the budget is decoded at a reduced scale (libjpeg's DCT scaling) when that brings
  it under; anything else over it is refused. At most ``max_concurrent`` decodes run at
  once per process, so four worst-case uploads cost two budgets, not four.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import stat
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facegate.errors import (
    CorruptImageError,
    EmptyImageError,
    FaceGateError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
)

if TYPE_CHECKING:
    from facegate.config import Settings

__all__ = [
    "ALLOWED_FORMATS",
    "ImageLimits",
    "ImageSource",
    "decode_image",
    "image_sha256",
    "load_image",
    "read_image_bytes",
]

ImageSource = bytes | bytearray | memoryview | str | os.PathLike

#: Pillow format names decoded. PPM covers PGM/PBM/PPM; JPEG also covers multi-picture
#: (MPO) camera JPEGs, which Pillow's JPEG opener returns; TIFF/BMP come from scanners.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "PPM", "BMP", "TIFF")

# Signatures of formats we know, used only to tell "damaged image" from "not an image"
# when Pillow cannot open the data. Kept wider than ALLOWED_FORMATS on purpose: a HEIC or
# AVIF file is an image, just one we do not read, and says so.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
)
_UNSUPPORTED_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")

_SUPPORTED_TEXT = "JPEG, PNG, WebP, GIF, PGM/PPM, BMP, TIFF"
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageLimits:
    """Input limits, passed explicitly so tests and callers need not touch global settings."""

    max_bytes: int
    max_pixels: int
    max_decoded_bytes: int = 256 * 1024 * 1024
    max_concurrent: int = 2

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ImageLimits:
        """Limits from ``FACEGATE_MAX_IMAGE_BYTES`` / ``_PIXELS`` / ``_DECODE_BYTES`` / ``_DECODES``."""
        if settings is None:
            from facegate.config import get_settings

            settings = get_settings()
        return cls(max_bytes=int(settings.max_image_bytes), max_pixels=int(settings.max_image_pixels),
                   max_decoded_bytes=int(settings.max_image_decode_bytes),
                   max_concurrent=int(settings.max_concurrent_decodes))


# Bytes a pixel costs at the peak of decoding and converting to RGB uint8, by Pillow mode:
# Pillow's own buffer (1 byte a pixel for 8-bit single-band modes, 2 for 16-bit, 4 for
# everything else, multi-band included), the copy numpy takes of it, what _to_rgb_array
# allocates on the way (float planes for 16-bit and float images, an RGBA composite for
# transparency) and the RGB result. Measured as the peak RSS over a 3000x3000 decode of each
# mode (L 11.4, RGB 10.3, CMYK 14.4, RGBA 22.4, I;16 17.1, I and F 32.5 bytes a pixel), with
# a margin; tests/test_imaging.py checks the estimate bounds the measured peak.
_COST_PER_PIXEL = {"1": 12, "L": 12, "P": 12, "RGB": 12, "I;16": 20, "I;16L": 20, "I;16B": 20, "I;16N": 20,
                   "I": 36, "F": 36}
_COST_MULTIBAND = 16
_COST_TRANSPARENT = 26
_COST_FIXED = 8 * 1024 * 1024  # the decoder's and allocator's own overhead, whatever the size


def decode_cost(mode: str, size: tuple[int, int], transparent: bool = False) -> int:
    """Peak bytes decoding an image of this mode and size to RGB takes (an upper estimate)."""
    w, h = size
    if transparent or mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        per = _COST_TRANSPARENT
    else:
        per = _COST_PER_PIXEL.get(mode, _COST_MULTIBAND)
    return w * h * per + _COST_FIXED


_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def _decode_slots(n: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore that lets ``n`` decodes run at once."""
    with _slots_lock:
        if n not in _slots:
            _slots[n] = threading.BoundedSemaphore(max(1, n))
        return _slots[n]


def image_sha256(data: bytes) -> str:
    """Hex sha256 of the original bytes: identifies an upload independent of decoding."""
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- formatting


def _prefix(what: str) -> str:
    return f"{what}: " if what else ""


def _fmt_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} bytes"


def _fmt_pixels(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}".rstrip("0").rstrip(".") + " MP"
    return f"{n} pixels"


def _too_many_pixels(size: tuple[int, int] | None, pixels: int, limits: ImageLimits, what: str) -> ImageTooLargeError:
    dims = f"{size[0]}x{size[1]} = " if size else ""
    return ImageTooLargeError(
        f"{_prefix(what)}image is {dims}{_fmt_pixels(pixels)}, over the limit of {_fmt_pixels(limits.max_pixels)} "
        "(FACEGATE_MAX_IMAGE_PIXELS); downscale it before sending"
    )


def _over_budget(size: tuple[int, int], mode: str, cost: int, limits: ImageLimits, what: str) -> ImageTooLargeError:
    w, h = size
    return ImageTooLargeError(
        f"{_prefix(what)}image is {w}x{h} in mode {mode}: decoding it would take {_fmt_bytes(cost)} of memory, "
        f"over the limit of {_fmt_bytes(limits.max_decoded_bytes)} (FACEGATE_MAX_IMAGE_DECODE_BYTES); "
        "send an 8-bit JPEG or PNG of a few megapixels"
    )


def _too_many_bytes(size: int, limits: ImageLimits, what: str) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"{_prefix(what)}file is {_fmt_bytes(size)}, over the limit of {_fmt_bytes(limits.max_bytes)} "
        "(FACEGATE_MAX_IMAGE_BYTES); downscale or recompress it"
    )


# --------------------------------------------------------------------------- reading


def read_image_bytes(path: str | os.PathLike[str], limits: ImageLimits | None = None) -> bytes:
    """Read a file's bytes, refusing it from ``stat`` before reading if it is over ``max_bytes``.

    Returns the original bytes so callers can hash them (:func:`image_sha256`) and decode
    them (:func:`decode_image`) without reading the file twice.
    """
    limits = limits or ImageLimits.from_settings()
    p = Path(path)
    what = str(p)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ImageError(f"file not found: {what}") from None
    except PermissionError:
        raise ImageError(f"cannot read {what}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"cannot read {what}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError(f"not a file but a directory: {what}")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"not a regular file: {what}")
    if st.st_size == 0:
        raise EmptyImageError(f"file is empty (0 bytes): {what}")
    if st.st_size > limits.max_bytes:
        raise _too_many_bytes(st.st_size, limits, what)
    try:
        with p.open("rb") as fh:
            # Bounded read: the file may have grown since stat().
            data = fh.read(limits.max_bytes + 1)
    except PermissionError:
        raise ImageError(f"cannot read {what}: permission denied") from None
    except OSError as exc:
        raise ImageError(f"cannot read {what}: {exc.strerror or exc}") from None
    if not data:
        raise EmptyImageError(f"file is empty (0 bytes): {what}")
    if len(data) > limits.max_bytes:
        raise _too_many_bytes(len(data), limits, what)
    return data


# --------------------------------------------------------------------------- decoding


def _sniff(data: bytes) -> str | None:
    """Name of the image format the leading bytes claim, or None if they claim none."""
    for magic, offset, name in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if len(data) >= 3 and data[:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
        return "PPM"
    if data[4:8] == b"ftyp" and data[8:12] in _UNSUPPORTED_BRANDS:
        return "HEIF/AVIF"
    return None


def _bomb_size(data: bytes) -> tuple[int, int] | None:
    """Best-effort header-only size for a message after Pillow refused a bomb.

    Pillow's DecompressionBombError does not carry the dimensions; constructing the plugin
    directly parses only the header (no pixel buffer), so this is cheap and safe.
    """
    try:
        Image.init()
        for fmt in ALLOWED_FORMATS:
            factory, accept = Image.OPEN[fmt]
            if accept and not accept(data[:16]):
                continue
            im = factory(io.BytesIO(data), "")
            return im.size
    except Exception:  # noqa: BLE001 - purely cosmetic, never fail because of it
        return None
    return None


def _corrupt_or_not(data: bytes, what: str, exc: BaseException | None) -> ImageError:
    """Map a Pillow failure to CorruptImageError (known signature) or NotAnImageError."""
    fmt = _sniff(data)
    detail = f" ({exc})" if exc is not None and str(exc) else ""
    if fmt == "HEIF/AVIF":
        return NotAnImageError(
            f"{_prefix(what)}HEIC/AVIF images are not supported; convert it to JPEG or PNG (on a phone: "
            "'Most compatible' camera format)"
        )
    if fmt is not None:
        return CorruptImageError(
            f"{_prefix(what)}the data starts like a {fmt} image but is truncated or damaged{detail}; "
            "re-export or re-upload the original file"
        )
    return NotAnImageError(
        f"{_prefix(what)}not an image in a supported format ({_SUPPORTED_TEXT}); "
        "check that the right file was sent"
    )


_PIXEL_RE = re.compile(r"\((\d+) pixels\)")


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    """Convert any decoded Pillow mode to an HxWx3 uint8 RGB array (see module doc for why)."""
    mode = im.mode
    if mode == "RGB":
        pass
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(im)
        if mode.startswith("I;16"):
            grey = arr.astype(np.float32) / 257.0
        else:
            grey = arr.astype(np.float64)
            lo, hi = (float(grey.min()), float(grey.max())) if grey.size else (0.0, 0.0)
            if mode == "I" and lo >= 0 and hi <= 65535:
                # Pillow uses "I" for 16-bit data from some decoders (TIFF, older PNG):
                # same scale as I;16 so the value range is kept.
                grey = grey / 257.0 if hi > 255 else grey
            elif mode == "F" and lo >= 0 and hi <= 1.0:
                grey = grey * 255.0
            elif hi > lo:
                grey = (grey - lo) * (255.0 / (hi - lo))
            else:
                grey = np.zeros_like(grey)
        g8 = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g8[:, :, None], 3, axis=2))
    elif mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode in ("P", "L", "RGB") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba).convert("RGB")
    else:
        # L, 1, P, CMYK, YCbCr, RGBX, ...: Pillow's converters are correct for these
        # (CMYK from Adobe JPEGs is already un-inverted by the JPEG plugin).
        im = im.convert("RGB")
    arr = np.asarray(im)
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, dtype=np.uint8, order="C")
    return arr


def decode_image(data: bytes, limits: ImageLimits | None = None, *, name: str = "") -> np.ndarray:
    """Decode image bytes to an HxWx3 RGB uint8 C-contiguous array.

    ``name`` only prefixes error messages (a file path, an upload's field name).
    Raises EmptyImageError, NotAnImageError, CorruptImageError or ImageTooLargeError.
    """
    limits = limits or ImageLimits.from_settings()
    data = bytes(data) if not isinstance(data, bytes) else data
    if not data:
        raise EmptyImageError(f"{_prefix(name)}image data is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise _too_many_bytes(len(data), limits, name)

    # Pillow warns (then errors at 2x) over Image.MAX_IMAGE_PIXELS (~89 MP). Make the
    # warning an error for this call only (MAX_IMAGE_PIXELS stays untouched); our own,
    # usually lower, limit is checked from the header right after open(), before load().
    # Consequence: a max_pixels above Pillow's limit is capped at ~89 MP, which no face
    # photo needs. catch_warnings is not thread-safe before Python 3.14: concurrent calls
    # can leave the "error" filter for DecompressionBombWarning installed process-wide,
    # which is harmless here (it is the behaviour we want anyway).
    with warnings.catch_warnings(), _decode_slots(limits.max_concurrent):
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            w, h = im.size
            if w <= 0 or h <= 0:
                raise CorruptImageError(f"{_prefix(name)}image header says {w}x{h}; the file is damaged")
            if w * h > limits.max_pixels:
                raise _too_many_pixels((w, h), w * h, limits, name)
            _fit_budget(im, limits, name)
            im.load()  # first frame only for GIF/WebP/MPO/TIFF
            with contextlib.suppress(Exception):  # a broken EXIF block must not lose the photo
                if im.getexif().get(_EXIF_ORIENTATION, 1) in (2, 3, 4, 5, 6, 7, 8):
                    ImageOps.exif_transpose(im, in_place=True)
            w, h = im.size
            if w * h > limits.max_pixels:  # size can change on load for some formats
                raise _too_many_pixels((w, h), w * h, limits, name)
            return _to_rgb_array(im)
        except FaceGateError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            m = _PIXEL_RE.search(str(exc))
            pixels = int(m.group(1)) if m else 0
            size = _bomb_size(data)
            if size is not None:
                pixels = size[0] * size[1]
            raise _too_many_pixels(size, pixels, limits, name) from None
        except MemoryError:
            raise ImageTooLargeError(
                f"{_prefix(name)}not enough memory to decode this image; downscale it before sending"
            ) from None
        except UnidentifiedImageError:
            raise _corrupt_or_not(data, name, None) from None
        except Exception as exc:
            raise _corrupt_or_not(data, name, exc) from exc


def _fit_budget(im: Image.Image, limits: ImageLimits, name: str) -> None:
    """Refuse, from the header, an image whose decode would take more than the memory budget;
    a JPEG is first asked to decode at 1/2, 1/4 or 1/8 scale (``draft``) when that fits."""
    transparent = "transparency" in im.info
    cost = decode_cost(im.mode, im.size, transparent)
    if cost <= limits.max_decoded_bytes:
        return
    if im.format == "JPEG":
        for scale in (2, 4, 8):
            target = (im.size[0] // scale, im.size[1] // scale)
            if decode_cost(im.mode, target) <= limits.max_decoded_bytes:
                im.draft(im.mode, target)
                if decode_cost(im.mode, im.size) <= limits.max_decoded_bytes:
                    return
                break
    raise _over_budget(im.size, im.mode, cost, limits, name)


def load_image(source: ImageSource, limits: ImageLimits | None = None) -> np.ndarray:
    """Load an image from bytes (the file content) or a path, as an HxWx3 RGB uint8 array.

    A path is size-checked with ``stat`` before it is read (see :func:`read_image_bytes`).
    A ``str`` is always a path: pass bytes for content.
    """
    limits = limits or ImageLimits.from_settings()
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), limits)
    if isinstance(source, (str, os.PathLike)):
        data = read_image_bytes(source, limits)
        return decode_image(data, limits, name=os.fspath(source))
    raise TypeError(f"load_image expects bytes or a path, got {type(source).__name__}")
