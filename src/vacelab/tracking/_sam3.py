"""SAM 3 text tracking through transformers' ``Sam3VideoModel``: every instance of a phrase, merged.

SAM 3's detector runs on every frame and its tracker links the detections, so one forward pass over the
clip covers it. transformers' ``Sam3VideoProcessor`` needs torchvision; without it the frames go through
:class:`~vacelab.tracking._sam2.ManualFeeder` (resize to the model's ``image_size``, the preprocessor
config's mean/std), the phrase through the model's own tokenizer (padded to 32 tokens, as the processor
does), and the low-resolution masks of the objects SAM 3 still reports (not suppressed, not removed by its
hot-start heuristics) are resized to the clip and merged, as ``Sam3VideoProcessor.postprocess_outputs``
does before it splits them per object.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ._runtime import load_model, read_json
from ._sam2 import ManualFeeder

MODEL_TYPES = ("sam3_video",)
WHAT = "--segment model (SAM 3 video)"
TEXT_TOKENS = 32


def track_text(
    video: np.ndarray,
    text: str,
    model: str,
    device: torch.device,
    dtype: torch.dtype,
    steps,
    local_only: bool = False,
) -> np.ndarray:
    """Merged bool mask ``[F, H, W]`` of every instance of ``text`` that SAM 3 finds and tracks
    (``local_only``: the model's files from its folder or the cache only)."""
    from transformers import Sam3VideoModel

    net = load_model(Sam3VideoModel, model, MODEL_TYPES, WHAT, device, dtype, local_only)
    session = open_session(video, text, model, net.config.image_size, device, dtype, local_only)
    mask = np.zeros(video.shape[:3], dtype=bool)
    with torch.inference_mode():
        for out in net.propagate_in_video_iterator(session, start_frame_idx=0):
            mask[out.frame_idx] = merged_mask(session, out, video.shape[1:3]).cpu().numpy()
            steps()
    return mask


def open_session(
    video: np.ndarray, text: str, model: str, image_size: int, device, dtype, local_only: bool = False
):
    """A ``Sam3VideoInferenceSession`` holding the prepared frames and the tokenised phrase."""
    from transformers import AutoTokenizer, Sam3VideoInferenceSession

    feeder = ManualFeeder.from_pretrained(model, image_size, local_only)
    session = feeder.open_session(video, device, dtype, Sam3VideoInferenceSession)
    # without tokenizer files transformers would build an empty CLIP tokenizer
    if read_json(model, "tokenizer_config.json", local_only) is None:
        raise InputError(
            f"{WHAT}: {model!r} has no tokenizer files (tokenizer_config.json) beside its weights"
        )
    tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=local_only)
    tokens = tokenizer(
        text, return_tensors="pt", padding="max_length", max_length=TEXT_TOKENS, truncation=True
    )
    prompt_id = session.add_prompt(text)
    session.prompt_input_ids[prompt_id] = tokens.input_ids.to(device)
    session.prompt_attention_masks[prompt_id] = tokens.attention_mask.to(device)
    return session


def merged_mask(session, out, size: tuple[int, int]) -> torch.Tensor:
    """Union of the frame's reported objects at clip size (bool ``[H, W]``)."""
    hidden = set(out.suppressed_obj_ids or ()) | set(session.hotstart_removed_obj_ids)
    shown = [logits for obj_id, logits in out.obj_id_to_mask.items() if obj_id not in hidden]
    if not shown:
        return torch.zeros(tuple(size), dtype=torch.bool)
    logits = torch.cat(shown, dim=0)[:, None].float()
    return (F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)[:, 0] > 0).any(0)
