"""Control annotators that need a model: depth (Depth Anything V2) and human pose (ViTPose), through
transformers.

:func:`estimate_depth` and :func:`estimate_poses` check their inputs and weights here, before torch is
imported (``vacelab.weights``: a model neither in its folder nor in the Hugging Face cache, with the hub
not answering, is one line at once); the models run in :mod:`._depth` and :mod:`._pose`, frames in
batches. What they find is drawn by :mod:`.drawing` (numpy and OpenCV only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..media import as_frames
from ..weights import check_weights

DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
POSE_MODEL = "usyd-community/vitpose-base-simple"
PERSON_MODEL = "PekingU/rtdetr_r50vd_coco_o365"
BATCH = 8  # frames a model call

Progress = bool | Callable[[int, int], None] | None


def estimate_depth(
    video: np.ndarray,
    *,
    model: str | None = None,
    device: str = "auto",
    batch: int = BATCH,
    progress: Progress = None,
) -> np.ndarray:
    """Relative depth of each frame of uint8 ``video [F, H, W, 3]``: float32 ``[F, H, W]``, larger = nearer.

    ``model``: a depth-estimation model that predicts relative depth (Depth Anything, DPT), hub id or
    folder (default ``depth-anything/Depth-Anything-V2-Small-hf``); ``device``: ``auto`` (CUDA when
    available), ``cpu``, ``cuda``, ``cuda:N``; ``progress``: as :func:`vacelab.tracking.track_mask`'s.
    The model runs in fp32, ``batch`` frames a call.
    """
    video = as_frames(video, "depth")
    model = model or DEPTH_MODEL
    local_only = check_weights(model, "config.json", field="control_model")
    from ..tracking._runtime import ProgressSteps, resolve_device_dtype
    from ._depth import depth_maps

    torch_device, _ = resolve_device_dtype(device, "fp32")
    with ProgressSteps(progress, len(video), desc="depth") as steps:
        return depth_maps(video, model, torch_device, steps, _batch(batch), local_only)


def estimate_poses(
    video: np.ndarray,
    *,
    boxes: Sequence[Sequence[Sequence[float]]] | None = None,
    model: str | None = None,
    person_model: str | None = None,
    device: str = "auto",
    batch: int = BATCH,
    progress: Progress = None,
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Human poses in each frame of uint8 ``video [F, H, W, 3]``: per frame, one ``(keypoints [17, 2],
    scores [17])`` per person, COCO-17 order, frame pixels.

    ``boxes``: per frame, the persons' boxes ``(x0, y0, x1, y1)`` (an empty list: nobody); ``None``: the
    persons are found by ``person_model``, an RT-DETR detector with a ``person`` class (default
    ``PekingU/rtdetr_r50vd_coco_o365``). ``model``: a ViTPose model (default
    ``usyd-community/vitpose-base-simple``). ``device``, ``batch``, ``progress``: as :func:`estimate_depth`.
    """
    video = as_frames(video, "pose")
    if boxes is not None:
        boxes = [np.asarray(b, np.float64).reshape(-1, 4) for b in boxes]
        if len(boxes) != len(video):
            raise InputError(f"boxes: {len(boxes)} frames of boxes for a {len(video)}-frame video")
        if person_model is not None:
            raise InputError("the persons are given as boxes: no detector runs", field="person_model")
    model = model or POSE_MODEL
    local_only = check_weights(model, "config.json", field="control_model")
    detect = boxes is None
    if detect:
        person_model = person_model or PERSON_MODEL
        person_local = check_weights(person_model, "config.json", field="person_model")
    from ..tracking._runtime import ProgressSteps, resolve_device_dtype
    from ._pose import find_persons, keypoints

    torch_device, _ = resolve_device_dtype(device, "fp32")
    batch = _batch(batch)
    with ProgressSteps(progress, len(video) * (1 + detect), desc="pose") as steps:  # detection: a pass
        if detect:
            boxes = find_persons(video, person_model, torch_device, steps, batch, person_local)
        return keypoints(video, boxes, model, torch_device, steps, batch, local_only)


def _batch(batch: int) -> int:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError("must be an integer >= 1", field="batch", value=batch)
    return batch


__all__ = ["estimate_depth", "estimate_poses"]
