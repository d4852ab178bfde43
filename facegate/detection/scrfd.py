"""SCRFD (InsightFace) face detector on onnxruntime: boxes, scores and 5 landmarks."""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np

from facegate.detection.base import Detection, nms
from facegate.models import onnx_session

_STRIDES = (8, 16, 32)
_ANCHORS_PER_CELL = 2
_ANCHOR_CACHE_SIZE = 192  # grids kept: 3 strides of 64 input sizes
# A pass shrinks its view bilinearly when it shrinks it by less than this factor (INTER_AREA
# otherwise: a strong bilinear shrink aliases).
_BILINEAR_SHRINK = 0.75

# Score (a probability) below which a candidate is not a face, unless the caller says otherwise,
# and the grey margin added on each side (a fraction of the width and height) so that faces cut
# by the frame edge are found. Both measured by bench/detection_threshold.py: see
# facegate/config.py (det_score_threshold, det_edge_padding), which defaults to these.
DEFAULT_SCORE_THRESHOLD = 0.65
DEFAULT_EDGE_PADDING = 0.05


def _shrink_interpolation(side: int, longest: int) -> int:
    """How to shrink ``longest`` to ``side``: bilinear for a slight shrink (INTER_AREA at a
    non-integer factor took 4x longer and found the same faces), INTER_AREA for a real one."""
    return cv2.INTER_LINEAR if side >= _BILINEAR_SHRINK * longest else cv2.INTER_AREA


def _stride_multiple(length: int) -> int:
    """``length`` rounded up to a multiple of the largest stride (SCRFD's input constraint)."""
    return int(math.ceil(length / float(_STRIDES[-1])) * _STRIDES[-1])


class ScrfdDetector:
    """SCRFD-500MF with keypoints.

    The network is fully convolutional, so the input size is chosen per image: the image's
    longest side is scaled to a side that follows the image, between ``min_side`` and
    ``max_side``, and letterboxed (top-left, no distortion) to the next multiple of 32 each
    way, not to a square. Upscaling a 250 px photo to 640 px makes its face larger
    than the detector's biggest anchors and loses it (on LFW, ArcFace pairs measured 99.62%
    10-fold accuracy at a 256 input, 99.60% at 320); a tiny image (ORL, 92x112) is
    upscaled to ``min_side`` so its face lands in the anchors' range. A face that fills
    the whole frame (ID-style crops) has no context around it, so when nothing is found the
    image is padded and searched once more.

    The letterbox puts its black margin right and below the image only, and SCRFD finds a face
    from an anchor point inside the face: a face cut by the left or top edge through its centre
    had no anchor point and was missed. ``edge_padding`` adds a grey margin on every side first
    (a fraction of the width and height; boxes are clipped back to the image, landmarks of the
    hidden part lie outside it).
    """

    name = "scrfd"
    model_keys: tuple[str, ...] = ("scrfd_500m",)

    def __init__(
        self,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        nms_threshold: float = 0.4,
        min_face_size: int = 20,
        min_side: int = 256,
        max_side: int = 640,
        small_face_side: int = 1280,
        intra_threads: int = 2,
        inter_threads: int = 1,
        edge_padding: float = DEFAULT_EDGE_PADDING,
        providers: str | None = None,
    ) -> None:
        self.session = onnx_session("scrfd_500m", intra_threads, inter_threads, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.min_face_size = min_face_size
        self.min_side = min_side
        self.max_side = max_side
        self.small_face_side = small_face_side
        self.edge_padding = edge_padding
        # How the edge margin is filled: grey (the network's zero after normalisation). Repeating
        # the border pixels (cv2.BORDER_REPLICATE) smears a cut face into stripes and found fewer
        # cut faces (bench/detection_threshold.py --border replicate).
        self.edge_border = cv2.BORDER_CONSTANT
        self._anchor_cache: dict[tuple[int, int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    # -- public -------------------------------------------------------------------------
    def detect(self, image: np.ndarray, score_threshold: float | None = None) -> list[Detection]:
        """All faces scoring at least ``score_threshold`` (default: the configured one).

        Images larger than ``max_side`` get a second pass at up to ``small_face_side``,
        because shrinking a crowd photo to 640 px leaves its small faces under the
        detector's smallest anchors; the passes are merged by NMS. Both passes see the image
        with its edge margin (``edge_padding``).
        """
        threshold = self.score_threshold if score_threshold is None else score_threshold
        h, w = image.shape[:2]
        view, pad_x, pad_y = self._with_edge_margin(image)
        side = self.input_side(*view.shape[:2])
        longest = max(view.shape[:2])
        if self.small_face_side > self.max_side and max(h, w) > self.max_side:
            fine_side = _stride_multiple(min(longest, self.small_face_side))
            # A slight shrink (a 1280x720 photo's 1408 px view to 1280) is bilinear: INTER_AREA at
            # a non-integer factor took 4x longer, and found the same faces (bench/README.md).
            fine = self._scaled(view, fine_side, shrink=_shrink_interpolation(fine_side, longest))
            # The first pass's image is shrunk from the second's when that one is shrunk too: the
            # 1280 px view halves to 640 px in a fraction of a millisecond, where shrinking the
            # whole view again took about as long as the network's 640 px pass.
            coarse = self._scaled(view, side, source=fine if fine_side <= longest else view)
            found = self._merge(
                self._detect_once(view, side, threshold, coarse) + self._detect_once(view, fine_side, threshold, fine)
            )
        else:
            found = self._detect_once(view, side, threshold)
        if pad_x or pad_y:
            found = self._back_to_image(found, pad_x, pad_y, h, w)
        if not found:
            found = self._detect_padded(image, threshold)
        return found

    def input_side(self, height: int, width: int) -> int:
        """The first pass's longest side: the image's, to a multiple of 32, within the limits."""
        side = _stride_multiple(max(height, width))
        return int(min(max(side, self.min_side), self.max_side))

    # -- internals ----------------------------------------------------------------------
    def _merge(self, found: list[Detection]) -> list[Detection]:
        if len(found) < 2:
            return found
        boxes = np.stack([d.box for d in found])
        scores = np.array([d.score for d in found], dtype=np.float32)
        return [found[i] for i in nms(boxes, scores, self.nms_threshold)]

    def _with_edge_margin(self, image: np.ndarray) -> tuple[np.ndarray, int, int]:
        """The image with a grey margin of ``edge_padding`` times its width and height on each
        side. SCRFD places a face from an anchor point inside it: a face cut by the frame edge
        through or before its centre has no anchor point there and is missed without a margin."""
        if self.edge_padding <= 0:
            return image, 0, 0
        h, w = image.shape[:2]
        pad_y, pad_x = round(self.edge_padding * h), round(self.edge_padding * w)
        view = cv2.copyMakeBorder(image, pad_y, pad_y, pad_x, pad_x, self.edge_border, value=(127, 127, 127))
        return view, pad_x, pad_y

    def _back_to_image(self, found: list[Detection], pad_x: int, pad_y: int, h: int, w: int) -> list[Detection]:
        """Detections on the margined view in the image's coordinates: boxes clipped to the
        image, landmarks left where they are (outside the frame for a cut face)."""
        shift = np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float32)
        kept: list[Detection] = []
        for det in found:
            whole = det.box - shift
            box = whole.copy()
            box[[0, 2]] = np.clip(box[[0, 2]], 0, w)
            box[[1, 3]] = np.clip(box[[1, 3]], 0, h)
            area = float((whole[2] - whole[0]) * (whole[3] - whole[1]))
            inside = float((box[2] - box[0]) * (box[3] - box[1])) / area if area > 0 else 0.0
            det.box = box
            if det.landmarks is not None:
                det.landmarks = det.landmarks - shift[:2]
            det.extras["inside"] = round(inside, 3)
            if inside > 0 and det.size >= self.min_face_size:
                kept.append(det)
        return kept

    def _detect_padded(self, image: np.ndarray, threshold: float) -> list[Detection]:
        """Second look for faces that fill the frame: add a grey border of 30% per side."""
        h, w = image.shape[:2]
        pad_y, pad_x = int(0.3 * h), int(0.3 * w)
        padded = cv2.copyMakeBorder(
            image, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_CONSTANT, value=(127, 127, 127)
        )
        found = self._detect_once(padded, self.input_side(*padded.shape[:2]), threshold)
        for det in found:
            det.box = det.box - np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float32)
            det.box[[0, 2]] = np.clip(det.box[[0, 2]], 0, w)
            det.box[[1, 3]] = np.clip(det.box[[1, 3]], 0, h)
            if det.landmarks is not None:
                det.landmarks = det.landmarks - np.array([pad_x, pad_y], dtype=np.float32)
            det.extras["padded"] = True
        return found

    def _scaled(
        self, image: np.ndarray, side: int, source: np.ndarray | None = None, shrink: int = cv2.INTER_AREA
    ) -> np.ndarray:
        """``image`` with its longest side scaled to ``side``, resized from ``source`` (``image``
        itself, or a version of it already scaled) with ``shrink`` when it gets smaller."""
        source = image if source is None else source
        h, w = image.shape[:2]
        scale = side / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        if source.shape[:2] == (new_h, new_w):
            return source
        interp = shrink if new_w < source.shape[1] else cv2.INTER_LINEAR
        return cv2.resize(source, (new_w, new_h), interpolation=interp)

    def _detect_once(
        self, image: np.ndarray, side: int, threshold: float, scaled: np.ndarray | None = None
    ) -> list[Detection]:
        """One pass with the longest side scaled to ``side`` (``scaled``: that image, when the
        caller made it already).

        The scaled image is padded (black, right and below) to the next multiple of 32, the
        largest stride, not to a ``side`` x ``side`` square: SCRFD takes any such size, and a
        1280x720 photo costs a 1280x736 input instead of 1280x1280 (bench/README.md, engine).
        """
        h, w = image.shape[:2]
        scale = side / max(h, w)
        if scaled is None:
            # A slight shrink (a 640x480 photo's 704x528 view to 640) is bilinear, as in detect():
            # INTER_AREA at that factor took 3.7 ms against 0.7 ms (bench/README.md).
            scaled = self._scaled(image, side, shrink=_shrink_interpolation(side, max(h, w)))
        resized = scaled
        new_h, new_w = resized.shape[:2]
        in_h, in_w = _stride_multiple(new_h), _stride_multiple(new_w)
        if (in_h, in_w) != (new_h, new_w):
            resized = cv2.copyMakeBorder(resized, 0, in_h - new_h, 0, in_w - new_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        # (pixel - 127.5) / 128, written straight into a contiguous NCHW float32 blob (onnxruntime
        # copied the transposed view it was given before; cv2.dnn.blobFromImage measured slower).
        blob = np.empty((1, 3, in_h, in_w), dtype=np.float32)
        np.subtract(resized.transpose(2, 0, 1), np.float32(127.5), out=blob[0], dtype=np.float32)
        blob *= np.float32(1.0 / 128.0)
        outputs = self.session.run(None, {self.input_name: blob})
        boxes, scores, kpss = self._decode(outputs, in_h, in_w, threshold)
        if scores.size == 0:
            return []
        boxes /= scale
        kpss /= scale
        keep = nms(boxes, scores, self.nms_threshold)
        found: list[Detection] = []
        for i in keep:
            box = boxes[i].copy()
            box[[0, 2]] = np.clip(box[[0, 2]], 0, w)
            box[[1, 3]] = np.clip(box[[1, 3]], 0, h)
            det = Detection(
                box=box.astype(np.float32),
                score=float(scores[i]),
                landmarks=kpss[i].reshape(5, 2).astype(np.float32),
                detector=self.name,
                extras={"input_side": side, "input_size": [in_w, in_h]},
            )
            if det.size >= self.min_face_size:
                found.append(det)
        return found

    def _anchors(self, height: int, width: int, stride: int) -> np.ndarray:
        """Anchor centres of one stride's grid, row by row, ``_ANCHORS_PER_CELL`` per cell."""
        key = (height, width, stride)
        with self._lock:
            centers = self._anchor_cache.get(key)
            if centers is None:
                ys, xs = np.mgrid[: height // stride, : width // stride]
                centers = (np.stack([xs, ys], axis=-1).astype(np.float32) * stride).reshape(-1, 2)
                centers = np.repeat(centers, _ANCHORS_PER_CELL, axis=0)
                if len(self._anchor_cache) >= _ANCHOR_CACHE_SIZE:  # input sizes now vary both ways
                    self._anchor_cache.clear()
                self._anchor_cache[key] = centers
        return centers

    def _decode(self, outputs: list[np.ndarray], height: int, width: int, threshold: float):
        boxes_all, scores_all, kps_all = [], [], []
        count = len(_STRIDES)
        for idx, stride in enumerate(_STRIDES):
            scores = outputs[idx].reshape(-1)
            bbox = outputs[idx + count].reshape(-1, 4) * stride
            kps = outputs[idx + 2 * count].reshape(-1, 10) * stride
            centers = self._anchors(height, width, stride)
            mask = scores >= threshold
            if not mask.any():
                continue
            c = centers[mask]
            d = bbox[mask]
            boxes_all.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
            k = kps[mask].reshape(-1, 5, 2) + c[:, None, :]
            kps_all.append(k.reshape(-1, 10))
            scores_all.append(scores[mask])
        if not scores_all:
            empty = np.zeros((0, 4), np.float32)
            return empty, np.zeros(0, np.float32), np.zeros((0, 10), np.float32)
        return np.concatenate(boxes_all), np.concatenate(scores_all), np.concatenate(kps_all)
