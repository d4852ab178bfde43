"""Head pose (yaw, pitch, roll in degrees) by fitting a mean 3-D face to 2-D landmarks.

A rigid 3-D model is posed with ``cv2.solvePnP`` under a pinhole camera whose focal length
is the image width and whose principal point is the image centre (a webcam's ~60 degree
field of view; the angles barely depend on the exact focal at face distances).

Conventions, from the person's point of view, for the challenge and the quality check:

* ``yaw`` > 0: the person turns their head to THEIR left (the nose moves to the image right,
  as seen by an un-mirrored camera);
* ``pitch`` > 0: the person looks up (the nose moves up in the image);
* ``roll`` > 0: the head tilts clockwise as seen in the image (the image-right eye lower).

Angles are Tait-Bryan, composed as ``R = Rz(roll) @ Ry(-yaw) @ Rx(-pitch)``, and taken
relative to the LINE OF SIGHT from the camera to the face, not to the optical axis: a person
looking straight at the camera is at 0 wherever the face sits in the frame. (Relative to the
optical axis, a face at the side of a close webcam's frame looks 10 degrees turned while
facing the lens: on LivePortrait d3 that hid half of a real turn.) A mirrored image negates yaw and roll and
keeps pitch, because both models below are left-right symmetric.

The 3-D points are a left-right symmetrised subset (in mm) of the mean 68-point face shape
commonly used for head pose (the 300-W mean shape shipped with OpenFace-style head-pose
examples), rounded to 0.1 mm. Only rigid points are used: eye corners, the nose, the mouth
corners and the chin move little with blinks and brows; the jaw contour is left out because
its visible outline slides over the face when the head turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# 106-point index -> 3-D position (x right, y down, z away from the camera; mm, nose tip ~ z=-37).
MODEL_106: dict[int, tuple[float, float, float]] = {
    35: (-45.6, -37.8, 6.0),  # image-left eye, outer corner
    39: (-19.5, -36.9, -0.4),  # image-left eye, inner corner
    89: (19.5, -36.9, -0.4),  # image-right eye, inner corner
    93: (45.6, -37.8, 6.0),  # image-right eye, outer corner
    72: (0.0, -42.2, -13.4),  # nose bridge, top
    73: (0.0, -31.0, -21.2),
    74: (0.0, -19.9, -29.3),
    86: (0.0, -8.4, -36.9),  # nose tip
    77: (-15.0, 2.6, -20.5),  # nostril wings
    80: (0.0, 6.6, -25.9),  # below the tip
    84: (15.0, 2.6, -20.5),
    52: (-28.9, 28.3, -2.7),  # mouth corners
    61: (28.9, 28.3, -2.7),
}

# The five detector points (SCRFD/ArcFace order: image-left eye centre, image-right eye centre,
# nose tip, image-left and image-right mouth corner) on the same mean shape.
MODEL_5 = np.array(
    [(-32.9, -38.5, 1.5), (32.9, -38.5, 1.5), (0.0, -8.4, -36.9), (-28.9, 28.3, -2.7), (28.9, 28.3, -2.7)],
    dtype=np.float64,
)
MODEL_106_INDICES = tuple(MODEL_106)
MODEL_106_POINTS = np.array([MODEL_106[i] for i in MODEL_106_INDICES], dtype=np.float64)
# Interocular (eye centre) distance of the model, used to guess the starting depth.
_MODEL_EYE_DISTANCE = 65.8


@dataclass(frozen=True)
class HeadPose:
    """Degrees, with the sign conventions of this module; ``error`` is the mean reprojection
    error as a fraction of the eye distance (a large one means the landmarks do not look
    like a face: a bad fit whose angles should not be trusted)."""

    yaw: float
    pitch: float
    roll: float
    error: float = 0.0


def camera_matrix(width: float, height: float) -> np.ndarray:
    return np.array([[width, 0.0, width / 2.0], [0.0, width, height / 2.0], [0.0, 0.0, 1.0]], dtype=np.float64)


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The camera-frame rotation of a head at these angles (the inverse of :func:`angles_from_rotation`)."""
    b, a, g = np.radians([-yaw, -pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(g), -np.sin(g), 0], [np.sin(g), np.cos(g), 0], [0, 0, 1]])
    return rz @ ry @ rx


def angles_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of ``R = Rz(roll) Ry(-yaw) Rx(-pitch)``."""
    r = rotation
    beta = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    alpha = np.arctan2(r[2, 1], r[2, 2])
    gamma = np.arctan2(r[1, 0], r[0, 0])
    return float(-np.degrees(beta)), float(-np.degrees(alpha)), float(np.degrees(gamma))


def project(points3d: np.ndarray, yaw: float, pitch: float, roll: float, width: int, height: int,
            distance: float = 600.0, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Pinhole projection of model points posed at these angles (relative to the line of
    sight), ``distance`` mm in front of the camera and ``offset`` mm to the side and down:
    what the synthetic check of the estimator feeds it."""
    tvec = np.array([offset[0], offset[1], distance], dtype=np.float64)
    rotation = _line_of_sight(tvec) @ rotation_from_angles(yaw, pitch, roll)
    rvec, _ = cv2.Rodrigues(rotation)
    image, _ = cv2.projectPoints(points3d.astype(np.float64), rvec, tvec, camera_matrix(width, height), None)
    return image.reshape(-1, 2)


def _line_of_sight(tvec: np.ndarray) -> np.ndarray:
    """The rotation taking the optical axis (0, 0, 1) onto the ray from the camera to ``tvec``."""
    ray = tvec / (np.linalg.norm(tvec) or 1.0)
    axis = np.cross([0.0, 0.0, 1.0], ray)
    sin, cos = float(np.linalg.norm(axis)), float(ray[2])
    if sin < 1e-9:
        return np.eye(3)
    rotation, _ = cv2.Rodrigues(axis / sin * np.arctan2(sin, cos))
    return np.asarray(rotation)


def solve_pose(model: np.ndarray, image_points: np.ndarray, width: float, height: float) -> HeadPose:
    """Fit the model to the points (Levenberg-Marquardt from a frontal start at the depth the
    eye distance implies, which also works for the 5-point model where a direct solution
    would need six points)."""
    pts = np.asarray(image_points, dtype=np.float64).reshape(-1, 2)
    cam = camera_matrix(width, height)
    spread = float(np.linalg.norm(pts.max(0) - pts.min(0))) or 1.0
    model_spread = float(np.linalg.norm(model[:, :2].max(0) - model[:, :2].min(0)))
    depth = width * model_spread / spread
    centre = pts.mean(0)
    guess = np.array([(centre[0] - width / 2.0) * depth / width, (centre[1] - height / 2.0) * depth / width, depth])
    ok, rvec_out, tvec_out = cv2.solvePnP(model, pts, cam, None, np.zeros(3), guess, useExtrinsicGuess=True,
                                          flags=cv2.SOLVEPNP_ITERATIVE)
    rvec, tvec = np.asarray(rvec_out, dtype=np.float64), np.asarray(tvec_out, dtype=np.float64)
    if not ok:
        return HeadPose(0.0, 0.0, 0.0, error=float("inf"))
    rotation = _line_of_sight(tvec.reshape(3)).T @ cv2.Rodrigues(rvec)[0]
    if tvec[2] < 0:  # the mirror solution behind the camera: never a real face
        return HeadPose(0.0, 0.0, 0.0, error=float("inf"))
    yaw, pitch, roll = angles_from_rotation(rotation)
    reproj, _ = cv2.projectPoints(model, rvec, tvec, cam, None)
    scale = spread * _MODEL_EYE_DISTANCE / model_spread
    error = float(np.linalg.norm(reproj.reshape(-1, 2) - pts, axis=1).mean()) / scale
    return HeadPose(yaw, pitch, roll, error)


def pose_from_106(landmarks: np.ndarray, frame_shape: tuple[int, ...]) -> HeadPose:
    """Pose from :class:`~facegate.liveness.landmarks.Landmarks106` output in a frame of this
    shape (``image.shape``: height first)."""
    pts = np.asarray(landmarks, dtype=np.float64)[list(MODEL_106_INDICES)]
    return solve_pose(MODEL_106_POINTS, pts, float(frame_shape[1]), float(frame_shape[0]))


def pose_from_5(landmarks: np.ndarray, frame_shape: tuple[int, ...] | None = None) -> HeadPose:
    """Pose from the five detector points. Without the frame shape a frame is assumed around
    the face (principal point at the points' centre, width four eye distances), which is
    what a portrait crop looks like."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if frame_shape is None:
        eye = float(np.linalg.norm(pts[1] - pts[0])) or 1.0
        width = 4.0 * eye
        offset = pts.mean(0) - np.array([width / 2.0, width / 2.0])
        return solve_pose(MODEL_5, pts - offset, width, width)
    return solve_pose(MODEL_5, pts, float(frame_shape[1]), float(frame_shape[0]))
