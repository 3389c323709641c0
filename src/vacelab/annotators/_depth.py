"""Depth through transformers' depth-estimation models (Depth Anything V1/V2, DPT), frames in batches."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..tracking._runtime import load_model, load_processor

MODEL_TYPES = ("depth_anything", "dpt")  # both predict relative inverse depth: larger = nearer
WHAT = "depth model"
FIELD = "control_model"


def depth_maps(video: np.ndarray, model: str, device, steps, batch: int, local_only: bool) -> np.ndarray:
    """Relative depth of each frame of uint8 ``video [F, H, W, 3]``, float32 ``[F, H, W]`` (larger =
    nearer), predicted ``batch`` frames at a time at the model's own size and resized to the frames'."""
    from transformers import AutoModelForDepthEstimation

    net = load_model(
        AutoModelForDepthEstimation, model, MODEL_TYPES, WHAT, device, torch.float32, local_only, FIELD
    )
    if getattr(net.config, "depth_estimation_type", "relative") != "relative":
        raise InputError(
            "a metric depth model (far = large); use a relative one such as Depth Anything V2",
            field=FIELD,
            value=model,
        )
    processor = load_processor(model, WHAT, local_only, FIELD)
    depth = np.empty(video.shape[:3], np.float32)
    sizes = [video.shape[1:3]]
    with torch.inference_mode():
        for start in range(0, len(video), batch):
            chunk = video[start : start + batch]
            inputs = processor(images=list(chunk), return_tensors="pt").to(device)
            outputs = net(**inputs)
            maps = processor.post_process_depth_estimation(outputs, target_sizes=sizes * len(chunk))
            for index, found in enumerate(maps, start):
                depth[index] = found["predicted_depth"].float().cpu().numpy()
                steps()
    return depth
