"""The documented changes vacelab makes to one generation call of diffusers' ``WanVACEPipeline``.

Nothing here re-implements Wan: each change is a context manager that patches ONE pipeline instance for
the duration of one call and restores it afterwards, and each applies to every expert
(:func:`~vacelab.generation.experts.experts`):

- :func:`mask_encoding_hook` swaps the bound ``prepare_masks`` method (``mask_encoding = "aligned"``);
- :func:`vace_end_hook` registers a forward pre-hook on each expert that zeroes
  ``control_hidden_states_scale`` from step ``ceil(F * steps)`` on (``vace_end = F``);
- :func:`boundary_hook` sets the step where a two-expert model switches experts (``boundary``);
- :func:`expert_steps_hook` records which steps each expert ran;
- :func:`scheduler_hook` swaps in the first-order (Euler) scheduler (``scheduler = "euler"``).

:func:`set_flow_shift` gives the pipeline the scheduler a run's flow shift asks for.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

from .experts import experts


def set_flow_shift(pipe, shift: float) -> None:
    """Give ``pipe`` a scheduler of the same kind with ``flow_shift = shift`` (nothing changes if equal)."""
    if pipe.scheduler.config.get("flow_shift") != shift:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=shift)


@contextlib.contextmanager
def mask_encoding_hook(pipe, mask_latent) -> Iterator[None]:
    """Within the block, ``pipe.prepare_masks`` returns ``mask_latent`` (float [64, R+T, h, w], numpy).

    Used by ``--mask-encoding aligned``: the transformer is conditioned on a mask built from each latent
    step's own VAE group (``geometry.mask_latent(..., "aligned")``) instead of diffusers' nearest-exact
    read. Only this instance is patched; the bound method is restored on exit.
    """
    import torch

    tensor = torch.from_numpy(mask_latent)[None]

    def prepare_masks(mask, reference_images=None, generator=None):
        if (mask.shape[-2] // 8, mask.shape[-1] // 8) != tuple(tensor.shape[-2:]):
            raise ValueError("mask_encoding_hook: the mask latent does not match the video size")
        return tensor.to(device=mask.device, dtype=mask.dtype)

    had_own = "prepare_masks" in vars(pipe)
    saved = vars(pipe).get("prepare_masks")
    pipe.prepare_masks = prepare_masks
    try:
        yield
    finally:
        if had_own:
            pipe.prepare_masks = saved
        else:
            del pipe.prepare_masks


def vace_cut_step(fraction: float, steps: int) -> int:
    """First denoising step without VACE control for ``--vace-end fraction``: ``ceil(fraction * steps)``."""
    return math.ceil(fraction * steps - 1e-9)


@contextlib.contextmanager
def vace_end_hook(pipe, fraction: float, steps: int) -> Iterator[None]:
    """Within the block, the VACE control is applied only for the first ``ceil(fraction * steps)`` steps.

    A forward pre-hook on each expert replaces ``control_hidden_states_scale`` by zeros from that step
    on (the hints are added with weight 0, so the base Wan model finishes freely). The step is the
    scheduler's ``step_index`` (``None`` before the first step). ``fraction >= 1`` installs nothing: the
    call is exactly the plain one.
    """
    if fraction >= 1.0:
        yield
        return
    cut = vace_cut_step(fraction, steps)

    def pre_hook(module, args, kwargs):
        step = pipe.scheduler.step_index or 0
        scale = kwargs.get("control_hidden_states_scale")
        if step >= cut and scale is not None:
            kwargs = {**kwargs, "control_hidden_states_scale": scale * 0}
            return args, kwargs
        return None

    handles = [module.register_forward_pre_hook(pre_hook, with_kwargs=True) for _, module in experts(pipe)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def boundary_hook(pipe, ratio: float | None) -> Iterator[None]:
    """Within the block, the pipeline switches to ``transformer_2`` at ``ratio`` of the training timesteps
    (its ``boundary_ratio``); ``None`` keeps the model's own. Restored on exit."""
    if ratio is None:
        yield
        return
    saved = pipe.config.get("boundary_ratio")
    pipe.register_to_config(boundary_ratio=ratio)
    try:
        yield
    finally:
        pipe.register_to_config(boundary_ratio=saved)


@contextlib.contextmanager
def expert_steps_hook(pipe, seen: dict[str, list[int]]) -> Iterator[None]:
    """Within the block, ``seen[expert]`` collects the denoising steps each expert ran, as observed (a
    forward pre-hook on each expert reads the scheduler's step), for ``run.json``."""

    def recorder(name: str):
        def pre_hook(module, args, kwargs):
            step = pipe.scheduler.step_index or 0
            if step not in seen.setdefault(name, []):
                seen[name].append(step)

        return pre_hook

    handles = [
        module.register_forward_pre_hook(recorder(name), with_kwargs=True) for name, module in experts(pipe)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def scheduler_hook(pipe, name: str, steps: int) -> Iterator[None]:
    """Within the block, ``name = "euler"`` samples with first-order flow Euler on the timesteps of the
    pipeline's UniPC flow scheduler (its ``solver_order=1`` with the corrector off, which is exactly an
    Euler step), as lightx2v samples its step-distilled LoRAs; ``"unipc"`` changes nothing. Restored on
    exit."""
    if name == "unipc":
        yield
        return
    from diffusers import UniPCMultistepScheduler

    from ..errors import InputError

    if not isinstance(pipe.scheduler, UniPCMultistepScheduler):
        raise InputError(
            f"needs the pipeline's UniPC flow scheduler, not {type(pipe.scheduler).__name__}",
            field="scheduler",
            value=name,
        )
    saved = pipe.scheduler
    pipe.scheduler = UniPCMultistepScheduler.from_config(
        saved.config, solver_order=1, disable_corrector=list(range(steps))
    )
    try:
        yield
    finally:
        pipe.scheduler = saved
