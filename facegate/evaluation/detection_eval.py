"""Detection accuracy against boxes annotated in dlib imglab XML files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegate.detection.base import Detection, iou


@dataclass
class AnnotatedImage:
    path: Path
    boxes: np.ndarray  # (n, 4) x1, y1, x2, y2
    ignore: np.ndarray  # (n,) bool: boxes marked ignore='1' count neither way


@dataclass
class DetectionReport:
    images: int
    faces: int
    matched: int
    false_positives: int
    per_image: list[dict] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.matched / self.faces if self.faces else 0.0

    @property
    def false_positives_per_image(self) -> float:
        return self.false_positives / self.images if self.images else 0.0

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "faces": self.faces,
            "matched": self.matched,
            "recall": round(self.recall, 4),
            "false_positives": self.false_positives,
            "false_positives_per_image": round(self.false_positives_per_image, 3),
            "per_image": self.per_image,
        }


def read_imglab_xml(xml_path: Path) -> list[AnnotatedImage]:
    """Parse dlib's imglab format: <image file=...><box top left width height [ignore]/>."""
    root = ET.parse(xml_path).getroot()
    images: list[AnnotatedImage] = []
    for node in root.iter("image"):
        boxes, ignore = [], []
        for box in node.iter("box"):
            top, left = float(box.get("top", 0)), float(box.get("left", 0))
            width, height = float(box.get("width", 0)), float(box.get("height", 0))
            boxes.append([left, top, left + width, top + height])
            ignore.append(box.get("ignore", "0") == "1")
        images.append(
            AnnotatedImage(
                path=xml_path.parent / node.get("file", ""),
                boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
                ignore=np.array(ignore, dtype=bool),
            )
        )
    return images


def match_detections(
    truth: np.ndarray, ignore: np.ndarray, found: list[Detection], iou_threshold: float
) -> tuple[int, int]:
    """Greedy one-to-one matching, best detector score first. Returns (matched, false positives)."""
    used = np.zeros(len(truth), dtype=bool)
    matched = false_pos = 0
    for det in sorted(found, key=lambda d: -d.score):
        if len(truth) == 0:
            false_pos += 1
            continue
        overlaps = iou(det.box, truth)
        overlaps[used] = -1
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold:
            used[best] = True
            if not ignore[best]:
                matched += 1
        else:
            false_pos += 1
    return matched, false_pos


def evaluate_detection(
    annotated: list[AnnotatedImage],
    detect: Callable[[Path], list[Detection]],
    iou_threshold: float = 0.4,
) -> DetectionReport:
    report = DetectionReport(images=0, faces=0, matched=0, false_positives=0)
    for item in annotated:
        found = detect(item.path)
        matched, false_pos = match_detections(item.boxes, item.ignore, found, iou_threshold)
        faces = int((~item.ignore).sum())
        report.images += 1
        report.faces += faces
        report.matched += matched
        report.false_positives += false_pos
        report.per_image.append(
            {"image": item.path.name, "faces": faces, "found": len(found), "matched": matched,
             "false_positives": false_pos}
        )
    return report
