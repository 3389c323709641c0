"""SAM 2 video tracking through transformers' ``Sam2VideoModel`` and its inference session.

Two ways to feed the session, chosen by :func:`frame_feeder`:

- ``ProcessorFeeder``: transformers' ``Sam2VideoProcessor`` (needs torchvision) resizes and normalises the
  frames, scales the prompts and post-processes the masks.
- ``ManualFeeder`` (no torchvision, as on the CPU machines this project is built on): the same steps done
  here, as the processor documents them: resize each frame to the model's square ``image_size``
  (bilinear), rescale to 0..1, normalise with the preprocessor config's ``image_mean``/``image_std``
  (ImageNet values when the folder has none, the processor's own defaults); prompts are scaled from clip
  pixels to ``image_size`` and added as point inputs (a box is two points labelled 2 and 3, exactly as the
  processor adds it); mask logits are resized bilinearly to the clip size and thresholded at 0.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ._runtime import load_model, read_json
from .prompts import Prompt

MODEL_TYPES = ("sam2_video", "sam2")
WHAT = "--track-model (SAM 2 video)"


def track_prompts(
    video: np.ndarray,
    prompts: list[Prompt],
    model: str,
    device: torch.device,
    dtype: torch.dtype,
    steps,
    local_only: bool = False,
) -> np.ndarray:
    """Merged bool mask ``[F, H, W]`` of every prompted object, propagated both ways through the clip
    (``local_only``: the model's files from its folder or the cache only)."""
    from transformers import Sam2VideoModel

    net = load_model(Sam2VideoModel, model, MODEL_TYPES, WHAT, device, dtype, local_only)
    feeder = frame_feeder(model, net.config.image_size, local_only)
    mask = np.zeros(video.shape[:3], dtype=bool)
    seen = set()
    with torch.inference_mode():
        session = feeder.open_session(video, device, dtype)
        for frame, logits in propagate(net, session, feeder, prompts):
            mask[frame] = feeder.to_masks(logits, video.shape[1:3]).any(0).cpu().numpy()
            if frame not in seen:
                seen.add(frame)
                steps()
    return mask


def propagate(net, session, feeder, prompts: list[Prompt]) -> Iterator[tuple[int, torch.Tensor]]:
    """Add each prompt as its own object, then yield ``(frame, mask logits [objects, 1, h, w])`` for the
    whole clip: forward from the earliest prompted frame to the end, then backward from it to frame 0 (the
    start frame comes twice)."""
    for obj_id, prompt in enumerate(prompts, start=1):
        feeder.add_prompt(session, prompt, obj_id)
        net(inference_session=session, frame_idx=prompt.frame)  # conditions the object on its frame
    start = min(p.frame for p in prompts)
    for reverse in (False, True):
        for out in net.propagate_in_video_iterator(session, start_frame_idx=start, reverse=reverse):
            yield out.frame_idx, out.pred_masks


def frame_feeder(model: str, image_size: int, local_only: bool = False):
    """transformers' processor where torchvision imports and the model ships a processor config (a bare
    ``save_pretrained`` of the model has none), else the manual feeder."""
    from transformers.utils import is_torchvision_available

    settings = preprocessor_settings(model, local_only)
    if is_torchvision_available() and settings is not None:
        from transformers import Sam2VideoProcessor

        return ProcessorFeeder(Sam2VideoProcessor.from_pretrained(model, local_files_only=local_only))
    return ManualFeeder(image_size, **(settings or {}))


def preprocessor_settings(model: str, local_only: bool = False) -> dict | None:
    """``image_mean``/``image_std``/``rescale_factor`` a model ships: in ``processor_config.json``
    (transformers 5 nests them there) or the older ``video_preprocessor_config.json`` /
    ``preprocessor_config.json``; None if it ships none."""
    combined = read_json(model, "processor_config.json", local_only) or {}
    for config in (
        combined.get("video_processor"),
        combined.get("image_processor"),
        read_json(model, "video_preprocessor_config.json", local_only),
        read_json(model, "preprocessor_config.json", local_only),
    ):
        if config:
            keys = {"image_mean": "mean", "image_std": "std", "rescale_factor": "rescale"}
            return {ours: config[theirs] for theirs, ours in keys.items() if theirs in config}
    return None


class ProcessorFeeder:
    """Frames, prompts and masks through transformers' ``Sam2VideoProcessor`` (needs torchvision)."""

    def __init__(self, processor):
        self.processor = processor

    def open_session(self, video: np.ndarray, device, dtype):
        return self.processor.init_video_session(
            video=list(video), inference_device=device, video_storage_device=device, dtype=dtype
        )

    def add_prompt(self, session, prompt: Prompt, obj_id: int) -> None:
        self.processor.add_inputs_to_inference_session(
            session,
            frame_idx=prompt.frame,
            obj_ids=obj_id,
            input_points=[[[list(xy) for xy in prompt.coords]]],
            input_labels=[[list(prompt.labels)]],
        )

    def to_masks(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.processor.post_process_masks([logits], original_sizes=[list(size)], binarize=True)[0][
            :, 0
        ]


class ManualFeeder:
    """The processor's documented steps without torchvision (see the module docstring)."""

    def __init__(
        self,
        image_size: int,
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        rescale: float = 1 / 255,
    ):
        """Defaults are the processor's own (ImageNet mean/std) for folders that ship no config."""
        self.image_size = int(image_size)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.rescale = float(rescale)

    @classmethod
    def from_pretrained(cls, model: str, image_size: int, local_only: bool = False) -> ManualFeeder:
        """The model's preprocessing settings (see :func:`preprocessor_settings`), defaults where absent."""
        return cls(image_size, **(preprocessor_settings(model, local_only) or {}))

    def pixel_values(self, frame: np.ndarray, device) -> torch.Tensor:
        """uint8 ``[H, W, 3]`` -> normalised float ``[3, S, S]`` on ``device``."""
        x = torch.from_numpy(np.ascontiguousarray(frame)).to(device).permute(2, 0, 1)[None].float()
        size = (self.image_size, self.image_size)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)[0]
        return (x * self.rescale - self.mean.to(device)) / self.std.to(device)

    def open_session(self, video: np.ndarray, device, dtype, session_class=None):
        """A video inference session (``Sam2VideoInferenceSession`` unless ``session_class`` names another,
        e.g. SAM 3's) holding every frame of ``video`` prepared by :meth:`pixel_values`."""
        if session_class is None:
            from transformers import Sam2VideoInferenceSession as session_class

        session = session_class(
            video_height=video.shape[1],
            video_width=video.shape[2],
            inference_device=device,
            inference_state_device=device,
            video_storage_device=device,
            dtype=dtype,
        )
        for index, frame in enumerate(video):
            session.add_new_frame(self.pixel_values(frame, device), frame_idx=index)
        return session

    def add_prompt(self, session, prompt: Prompt, obj_id: int) -> None:
        scale = torch.tensor(
            [self.image_size / session.video_width, self.image_size / session.video_height],
            dtype=torch.float32,
        )
        coords = torch.tensor(prompt.coords, dtype=torch.float32) * scale
        obj_idx = session.obj_id_to_idx(obj_id)
        inputs = {
            "point_coords": coords.view(1, 1, -1, 2),
            "point_labels": torch.tensor(prompt.labels, dtype=torch.int32).view(1, 1, -1),
        }
        session.add_point_inputs(obj_idx, prompt.frame, inputs)
        session.remove_mask_inputs(obj_idx, prompt.frame)
        session.obj_with_new_inputs = [obj_id]

    def to_masks(self, logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)[:, 0] > 0
