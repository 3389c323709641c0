"""One generation pass: one clip of 4n+1 frames through diffusers' ``WanVACEPipeline``.

What vacelab hands diffusers, and why:

- ``video``: the clip's frames as PIL RGB at exactly ``height x width``, ``num_frames`` = the clip's
  length: diffusers neither resizes nor pads them (a smaller video would be zero-padded silently).
- ``mask``: PIL ``L`` 0/255 at the same size (a mask of another size would be lanczos-resized and stop
  being binary).
- ``reference_images``: each fitted on a white canvas of the job's size (``media.fit_on_canvas``) and
  passed in REVERSE order: diffusers prepends each reference in turn, so the last one handed ends up
  first; reversed, the first latent step is the user's first reference, as in official VACE.
- ``generator``: a CPU ``torch.Generator`` seeded with the pass's seed (the same noise on every device).

The hooks of :mod:`~vacelab.generation.hooks` (``mask_encoding``, ``vace_end``; with two experts
``boundary`` and the record of each expert's steps) are on for the call only. A two-expert model gets
``guidance_scale_2`` (``guidance_2``; diffusers uses ``guidance`` when it is ``None``). ``--cache R``
puts :func:`~vacelab.generation.stepcache.cache_hook` around the call (after ``vace_end``, whose scale it
reads); its record lands in ``ctx.cache``.
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np

from ..errors import InputError
from ..job import Job
from .context import Progress, RunContext, Stopwatch
from .hooks import (
    boundary_hook,
    expert_steps_hook,
    mask_encoding_hook,
    scheduler_hook,
    set_flow_shift,
    vace_end_hook,
)
from .settings import OFFLOAD_MODES, RunSettings
from .stepcache import cache_hook


def pipeline_inputs(clip: Job) -> dict:
    """The conditioning exactly as diffusers must receive it (see the module docstring)."""
    from PIL import Image

    from ..media import fit_on_canvas

    frames, height, width = clip.mask.shape
    video = [Image.fromarray(np.ascontiguousarray(frame), "RGB") for frame in clip.video]
    mask = [Image.fromarray(m.astype(np.uint8) * 255, "L") for m in clip.mask]
    refs = [Image.fromarray(fit_on_canvas(ref, (height, width)), "RGB") for ref in reversed(clip.refs)]
    return {
        "video": video,
        "mask": mask,
        "reference_images": refs or None,
        "height": height,
        "width": width,
        "num_frames": frames,
    }


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """diffusers' float output in [0, 1] -> uint8, rounded as diffusers' own PIL conversion does."""
    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


def generate(
    ctx: RunContext, clip: Job, *, seed: int, clock: Stopwatch, report: Progress, prompt: str | None = None
) -> np.ndarray:
    """One pass of ``ctx.loaded`` over ``clip`` (its conditioning): the raw output, uint8 [F, H, W, 3].

    Stages are timed into ``clock`` ("inputs", "generate"); each denoising step is reported as
    ``report("denoise", step, steps)``.
    """
    import torch

    pipe, settings = ctx.loaded.pipe, ctx.settings
    with clock("inputs"):
        set_flow_shift(pipe, ctx.shift)
        inputs = pipeline_inputs(clip)

    def on_step(pipe_, step, timestep, tensors):
        report("denoise", step + 1, settings.steps)
        return {}

    with ExitStack() as hooks:
        if settings.mask_encoding == "aligned":
            from ..geometry import mask_latent

            hooks.enter_context(mask_encoding_hook(pipe, mask_latent(clip.mask, len(clip.refs), "aligned")))
        hooks.enter_context(vace_end_hook(pipe, settings.vace_end, settings.steps))
        hooks.enter_context(scheduler_hook(pipe, settings.scheduler, settings.steps))
        if len(ctx.loaded.experts) > 1:
            hooks.enter_context(boundary_hook(pipe, settings.boundary))
            ctx.expert_steps.clear()
            hooks.enter_context(expert_steps_hook(pipe, ctx.expert_steps))
        cache = hooks.enter_context(cache_hook(pipe, settings.cache, settings.steps))
        report("denoise", 0, settings.steps)
        try:
            with clock("generate"):
                raw = pipe(
                    prompt=ctx.prompt if prompt is None else prompt,
                    negative_prompt=ctx.negative,
                    conditioning_scale=settings.conditioning_scale,
                    num_inference_steps=settings.steps,
                    guidance_scale=settings.guidance,
                    guidance_scale_2=settings.guidance_2,  # two experts only (None: guidance)
                    generator=torch.Generator("cpu").manual_seed(seed),
                    output_type="np",
                    callback_on_step_end=on_step,
                    **inputs,
                ).frames[0]
        except torch.OutOfMemoryError:
            raise out_of_memory(settings, ctx.loaded.device, clip) from None
        except RuntimeError as exc:
            if settings.attention and "No available kernel" in str(exc):  # e.g. cuDNN: unsupported head size
                raise InputError(
                    "no kernel for this model/GPU/dtype", field="attention", value=settings.attention
                ) from None
            raise
        ctx.cache = cache.record() if cache is not None else None
    video = to_uint8(raw)
    if video.shape != clip.video.shape:
        raise RuntimeError(f"pipeline returned {video.shape}, expected {clip.video.shape}")
    return video


def lighter_offload(mode: str) -> str | None:
    """The next offload mode that keeps less on the accelerator (``None`` after ``sequential``)."""
    index = OFFLOAD_MODES.index(mode)
    return OFFLOAD_MODES[index + 1] if index + 1 < len(OFFLOAD_MODES) else None


def out_of_memory(settings: RunSettings, device: str, clip: Job) -> InputError:
    """The one-line error of a pass that ran out of memory, with the lighter settings to retry with."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    lighter = None if device == "cpu" else lighter_offload(settings.offload)
    advice = f"retry with --offload {lighter}" if lighter else "retry with fewer frames or a smaller size"
    if not settings.vae_tiling:
        advice += " (and/or --vae-tiling)"
    geometry = clip.geometry
    return InputError(
        f"out of memory on {device} with --offload {settings.offload} at {geometry.frames} frames "
        f"{geometry.width}x{geometry.height} ({geometry.tokens} tokens): {advice}"
    )
