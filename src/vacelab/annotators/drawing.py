"""Control frames drawn the way VACE's annotators draw them (numpy and OpenCV only, no model).

- :func:`depth_frames`: relative depth as gray, near = bright, three equal channels, normalised once over
  the whole clip (VACE's depth annotator normalises each frame on its own, which makes a clip flicker
  when its depth range changes from frame to frame);
- :func:`pose_frames`: COCO-17 keypoints as the OpenPose 18-point body skeleton of VACE's pose annotator
  (coloured limbs at 60 % over black, coloured joints, a neck between the shoulders), drawn at VACE's
  drawing size (short side 1024, sides multiples of 64) and resized to the job with area averaging;
- :func:`layout_frames`: the outline of each object's region, black on white, as VACE's layout
  annotators draw boxes and tracked masks.
"""

from __future__ import annotations

import math

import numpy as np

KEYPOINT_THRESHOLD = 0.3  # a keypoint below this score is not drawn (VACE's pose annotator)
DRAW_SHORT_SIDE = 1024  # VACE draws poses on the frame resized to this short side (sides multiples of 64)
LIMB_HALF_WIDTH = 4  # px at the drawing size: the minor half-axis of each limb's ellipse
JOINT_RADIUS = 4  # px at the drawing size
LAYOUT_THICKNESS = 3  # OpenCV's pen (about 5 px wide) of VACE's mask and track layout annotators

# OpenPose's body points, each taken from a COCO-17 point; "neck" is the mean of the two shoulders.
OPENPOSE_FROM_COCO = (0, "neck", 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
# The 17 limbs VACE draws, as pairs of OpenPose points (neck-shoulders, arms, neck-hips, legs, head).
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
# OpenPose's colour wheel, one colour per limb and per point, in RGB as VACE's pose videos show it: VACE
# draws OpenPose's table on a BGR canvas, so red and blue are swapped against OpenPose's own pictures.
COLORS = tuple(
    (b, g, r)
    for r, g, b in (
        (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
        (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
        (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
    )
)  # fmt: skip


def depth_frames(depth: np.ndarray) -> np.ndarray:
    """Relative depth float ``[F, H, W]`` (larger = nearer) -> uint8 ``[F, H, W, 3]``: one min/max for
    the whole clip mapped to 0..255 (near = bright), the same value on the three channels."""
    depth = np.asarray(depth, np.float32)
    low, high = depth.min(), depth.max()
    scaled = depth - low  # one float32 copy of the clip: a 480p, 81-frame clip is 130 MB
    span = high - low  # float32, rounded as the nearest pixel's own difference: it maps to exactly 1.0
    if span > 0:
        scaled /= span  # not a multiply by 255 / span, whose rounding can put the nearest pixel at 254
        scaled *= 255.0
    else:
        scaled[...] = 0.0
    gray = np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)  # truncated, as VACE's annotator does
    return np.repeat(gray[..., None], 3, axis=-1)


def openpose_points(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One person's COCO-17 ``keypoints [17, 2]`` and ``scores [17]`` -> OpenPose's 18 points and
    whether each is drawn (score above :data:`KEYPOINT_THRESHOLD`; the neck: both shoulders)."""
    keypoints, scores = np.asarray(keypoints, np.float64), np.asarray(scores, np.float64)
    seen = scores > KEYPOINT_THRESHOLD
    points = np.empty((18, 2))
    visible = np.empty(18, bool)
    for i, coco in enumerate(OPENPOSE_FROM_COCO):
        if coco == "neck":
            points[i], visible[i] = keypoints[[5, 6]].mean(0), seen[5] and seen[6]
        else:
            points[i], visible[i] = keypoints[coco], seen[coco]
    return points, visible


def draw_size(size: tuple[int, int]) -> tuple[int, int]:
    """VACE's pose drawing size for a ``(height, width)`` frame: short side 1024, sides multiples of 64."""
    scale = DRAW_SHORT_SIDE / min(size)
    return tuple(int(round(side * scale / 64.0)) * 64 for side in size)


def pose_frame(people, size: tuple[int, int]) -> np.ndarray:
    """One uint8 RGB ``[H, W, 3]`` frame of ``people``: ``[(keypoints [17, 2], scores [17]), ...]`` in
    pixels of a ``(height, width)`` frame, drawn as VACE's body pose annotator draws them."""
    import cv2

    height, width = size
    canvas_h, canvas_w = draw_size(size)
    canvas = np.zeros((canvas_h, canvas_w, 3), np.uint8)
    scale = np.array([canvas_w / width, canvas_h / height])
    skeletons = [openpose_points(keypoints, scores) for keypoints, scores in people]
    for limb, (a, b) in enumerate(LIMBS):
        for points, visible in skeletons:
            if not (visible[a] and visible[b]):
                continue
            (xa, ya), (xb, yb) = points[a] * scale, points[b] * scale
            length = math.hypot(xa - xb, ya - yb)
            angle = math.degrees(math.atan2(ya - yb, xa - xb))
            centre = (int((xa + xb) / 2), int((ya + yb) / 2))
            polygon = cv2.ellipse2Poly(centre, (int(length / 2), LIMB_HALF_WIDTH), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, COLORS[limb])
    canvas = (canvas * 0.6).astype(np.uint8)  # limbs dimmed under the joints
    for points, visible in skeletons:
        for point in np.flatnonzero(visible):
            x, y = points[point] * scale
            cv2.circle(canvas, (int(x), int(y)), JOINT_RADIUS, COLORS[point], thickness=-1)
    return cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)


def pose_frames(poses, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``[F, H, W, 3]``: :func:`pose_frame` of each frame's people (``poses[f]``)."""
    return np.stack([pose_frame(people, size) for people in poses])


def layout_frames(regions: np.ndarray) -> np.ndarray:
    """bool ``[F, H, W]`` object regions -> uint8 ``[F, H, W, 3]``: a white canvas with the outer outline
    of each region in black, OpenCV's thickness 3 (VACE's layout annotators: a box stays a box, a tracked
    mask keeps its shape)."""
    import cv2

    frames = np.full((*regions.shape, 3), 255, np.uint8)
    for frame, region in zip(frames, regions, strict=True):
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(frame, contours, -1, (0, 0, 0), thickness=LAYOUT_THICKNESS)
    return frames
