"""Human keypoints through transformers: persons from RT-DETR (or given boxes), their COCO-17 keypoints
from ViTPose (``VitPoseForPoseEstimation``), a batch of frames a call."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..tracking._runtime import load_model, load_processor

POSE_TYPES = ("vitpose",)
PERSON_TYPES = ("rt_detr", "rt_detr_v2")
PERSON_SCORE = 0.3  # detections of the person class kept from this score (transformers' ViTPose example)

Poses = list[list[tuple[np.ndarray, np.ndarray]]]  # per frame: [(keypoints [17, 2], scores [17]), ...]


def find_persons(
    video: np.ndarray, model: str, device, steps, batch: int, local_only: bool
) -> list[np.ndarray]:
    """Person boxes ``[P, 4]`` (x0, y0, x1, y1, frame pixels) of each frame, by an object detector."""
    from transformers import AutoModelForObjectDetection

    what, field = "person detector", "person_model"
    net = load_model(
        AutoModelForObjectDetection, model, PERSON_TYPES, what, device, torch.float32, local_only, field
    )
    person = [i for i, name in net.config.id2label.items() if str(name).lower() == "person"]
    if not person:
        raise InputError("the detector has no 'person' class", field=field, value=model)
    processor = load_processor(model, what, local_only, field)
    boxes = []
    with torch.inference_mode():
        for start in range(0, len(video), batch):
            chunk = list(video[start : start + batch])
            outputs = net(**processor(images=chunk, return_tensors="pt").to(device))
            found = processor.post_process_object_detection(
                outputs, threshold=PERSON_SCORE, target_sizes=[video.shape[1:3]] * len(chunk)
            )
            for result in found:
                keep = result["labels"] == int(person[0])
                boxes.append(result["boxes"][keep].float().cpu().numpy().reshape(-1, 4))
                steps()
    return boxes


def keypoints(
    video: np.ndarray, boxes: list[np.ndarray], model: str, device, steps, batch: int, local_only: bool
) -> Poses:
    """COCO-17 keypoints and scores of every person box of every frame, ``batch`` frames at a time."""
    from transformers import VitPoseForPoseEstimation

    what, field = "pose model", "control_model"
    net = load_model(
        VitPoseForPoseEstimation, model, POSE_TYPES, what, device, torch.float32, local_only, field
    )
    if net.config.num_labels != 17:
        raise InputError(
            f"predicts {net.config.num_labels} keypoints, not COCO's 17", field=field, value=model
        )
    processor = load_processor(model, what, local_only, field)
    experts = getattr(net.config.backbone_config, "num_experts", 1)
    coco = [[[x0, y0, x1 - x0, y1 - y0] for x0, y0, x1, y1 in frame] for frame in boxes]  # x, y, w, h
    poses: Poses = []
    with torch.inference_mode():
        for start in range(0, len(video), batch):
            chunk = range(start, min(start + batch, len(video)))
            people = [i for i in chunk if coco[i]]
            found = iter(())
            if people:
                chunk_boxes = [coco[i] for i in people]
                inputs = processor(images=[video[i] for i in people], boxes=chunk_boxes, return_tensors="pt")
                extra = {}
                if experts > 1:  # ViTPose+: COCO is dataset 0
                    extra["dataset_index"] = torch.zeros(len(inputs["pixel_values"]), dtype=torch.long)
                outputs = net(**inputs.to(device), **{k: v.to(device) for k, v in extra.items()})
                found = iter(processor.post_process_pose_estimation(outputs, boxes=chunk_boxes))
            for i in chunk:
                results = next(found) if coco[i] else []
                poses.append([(r["keypoints"].numpy(), r["scores"].numpy()) for r in results])
                steps()
    return poses
