"""Liveness, vision floor: 106 landmarks, head pose and per-frame action signals.

``Landmarks106`` finds the points, :func:`~facegate.liveness.pose.pose_from_106` the head
pose, :func:`~facegate.liveness.actions.frame_signals` one frame's signals and
``blinked``/``turned``/``looked_up``/``smiled`` decide whether (and when) an action happened
over a sequence of frames. Nothing here knows about challenges, storage or identities.
"""

from facegate.liveness.actions import (
    ActionResult,
    FrameSignals,
    blinked,
    blinks,
    frame_signals,
    looked_up,
    smiled,
    turned,
)
from facegate.liveness.landmarks import Landmarks106
from facegate.liveness.pose import HeadPose, pose_from_5, pose_from_106

__all__ = [
    "ActionResult",
    "FrameSignals",
    "HeadPose",
    "Landmarks106",
    "blinked",
    "blinks",
    "frame_signals",
    "looked_up",
    "pose_from_5",
    "pose_from_106",
    "smiled",
    "turned",
]
