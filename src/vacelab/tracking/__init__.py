"""Masks that follow an object through a clip: SAM 2 from a box or clicks, SAM 3 from a phrase.

``track_mask`` is the whole public surface. Prompts are checked here (no torch import, so the prepare
path stays light); the models run in :mod:`vacelab.tracking._sam2` and :mod:`vacelab.tracking._sam3`,
imported only when a mask is tracked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InputError
from ..media import as_frames
from ..weights import check_weights
from .prompts import Prompt, box_prompt, points_prompt

DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"
DEFAULT_TEXT_MODEL = "facebook/sam3"
DTYPES = ("auto", "bf16", "fp16", "fp32")

Progress = bool | Callable[[int, int], None] | None


def track_mask(
    video: np.ndarray,
    *,
    boxes: Sequence[tuple[Sequence[float], int]] | None = None,
    points: Sequence[tuple[Sequence[Sequence[float]], Sequence[int], int]] | None = None,
    text: str | None = None,
    model: str | None = None,
    dtype: str = "auto",
    device: str = "auto",
    progress: Progress = None,
) -> np.ndarray:
    """Track objects through ``video`` and return their merged mask, bool ``[F, H, W]`` (True = object).

    - ``video``: uint8 ``[F, H, W, 3]``; all coordinates are pixels of these frames (x right, y down).
    - ``boxes``: ``[((x0, y0, x1, y1), frame), ...]``; each box is one object, prompted on ``frame``.
    - ``points``: ``[([(x, y), ...], [label, ...], frame), ...]``; each entry is one object; label 1 is a
      positive click, 0 a negative one; at least one positive click per object.
    - ``text``: a phrase ("the red car"): every instance SAM 3 finds is tracked; not combinable with
      boxes/points.
    - ``model``: hub id or local folder for ``from_pretrained``; default ``facebook/sam2.1-hiera-tiny``
      (SAM 2 video) for boxes/points and ``facebook/sam3`` (SAM 3 video) for text.
    - ``dtype``: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16``, ``fp16`` or ``fp32``.
    - ``device``: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    - ``progress``: ``True`` a tqdm bar over frames (``None``: on a terminal only), ``False`` silent, or
      a callable ``progress(done, total)`` called after each frame.

    Prompts are propagated forward and backward from the earliest prompted frame through the whole clip;
    all objects are merged into one mask. Bad prompts, a missing model or unknown options raise
    :class:`~vacelab.errors.InputError` with one line; weights neither in ``model``'s folder nor in the
    Hugging Face cache, with the hub not answering, before torch is imported (``vacelab.weights``).
    """
    video = as_frames(video, "tracking")
    frames, height, width = video.shape[:3]
    prompts = [box_prompt(b, frames, height, width) for b in boxes or ()]
    prompts += [points_prompt(p, frames, height, width) for p in points or ()]
    if dtype not in DTYPES:
        raise InputError(f"tracking dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if text is not None:
        if not text.strip():
            raise InputError("the phrase is empty; name the object to segment, e.g. 'red car'", field="text")
        if prompts:
            raise InputError(
                "a phrase to segment cannot be combined with tracked boxes or clicks (different models)"
            )
    elif not prompts:
        raise InputError("nothing to track: give boxes, clicks (points) or a phrase (text)")

    model = model or (DEFAULT_TEXT_MODEL if text is not None else DEFAULT_MODEL)
    # weights neither here nor to be had: one line now, before torch imports and the hub is retried
    local_only = check_weights(model, "config.json", field="track_model")
    from ._runtime import ProgressSteps, resolve_device_dtype

    torch_device, torch_dtype = resolve_device_dtype(device, dtype)
    with ProgressSteps(progress, frames) as steps:
        if text is not None:
            from ._sam3 import track_text

            return track_text(video, text.strip(), model, torch_device, torch_dtype, steps, local_only)
        from ._sam2 import track_prompts

        return track_prompts(video, prompts, model, torch_device, torch_dtype, steps, local_only)


__all__ = ["Prompt", "track_mask"]
