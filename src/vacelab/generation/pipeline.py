"""Loading diffusers' ``WanVACEPipeline`` and the two documented hooks vacelab adds to it.

Nothing here re-implements Wan: the model is ``WanVACEPipeline.from_pretrained`` and every change of
behaviour is a context manager that patches ONE pipeline instance for the duration of one call and
restores it afterwards:

- :func:`mask_encoding_hook` swaps the bound ``prepare_masks`` method (``--mask-encoding aligned``);
- :func:`vace_end_hook` registers a transformer forward pre-hook that zeroes
  ``control_hidden_states_scale`` from step ``ceil(F * steps)`` on (``--vace-end F``).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError
from .settings import DTYPES, MODEL_ALIASES, OFFLOAD_MODES, RunSettings

SHIFT_480P = 3.0  # diffusers' WanVACEPipeline docstring: 3.0 for 480p, 5.0 for 720p
SHIFT_720P = 5.0


# ---------------------------------------------------------------------------------------- resolution
def resolve_model(model: str) -> str:
    """``1.3b`` / ``14b`` -> hub id; anything else is returned as given (hub id or folder)."""
    return MODEL_ALIASES.get(model.strip().lower(), model)


def names_a_folder(model: str) -> bool:
    """True when ``model`` can only be a folder path, not a hub id ``owner/name``."""
    return model.startswith((".", "/", "~")) or model.count("/") != 1


def default_shift(height: int, width: int) -> float:
    """Flow shift for a job size: 3.0 up to 480p (area of 832x480), 5.0 above (720p)."""
    return SHIFT_480P if height * width <= 480 * 832 else SHIFT_720P


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``mps``, else ``cpu``."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> bf16 on an accelerator, fp32 on CPU; otherwise the named torch dtype."""
    import torch

    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype}: choose from {', '.join(DTYPES)}")
    if dtype == "auto":
        dtype = "fp32" if device == "cpu" else "bf16"
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]


def check_ftfy() -> None:
    """diffusers' Wan prompt cleaning imports ``ftfy`` lazily and fails mid-run without it."""
    try:
        import ftfy  # noqa: F401
    except ImportError:
        raise InputError(
            "the Python package ftfy is missing (diffusers' Wan prompts need it): pip install ftfy"
        ) from None


def model_revision(model: str) -> str | None:
    """The commit hash of a hub model as cached locally (``None`` for a folder or an uncached id)."""
    if Path(model).is_dir():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "model_index.json")
    except Exception:  # a malformed id: the loader has reported it already
        return None
    return Path(found).parent.name if isinstance(found, str) else None


def _missing_weights(model: str, exc: Exception) -> InputError:
    from huggingface_hub import constants

    offline = "offline (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE else "the hub did not provide them"
    detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return InputError(
        f"--model {model}: no weights found: not a local folder, not in the Hugging Face cache "
        f"({constants.HF_HUB_CACHE}), and {offline} ({detail}). Download them with "
        f"`hf download {model}` (or `huggingface-cli download {model}`), or point --model at a folder "
        f"holding model_index.json"
    )


# --------------------------------------------------------------------------------------------- loading
def check_loadable(settings: RunSettings):
    """Everything about loading ``settings`` that can be refused without loading: ftfy, the LoRA files,
    the model folder (or, offline, its cache entry), --offload on this device, --dtype, --attention.

    Returns ``(model, path, device, dtype, loras)`` for :func:`load_pipeline`; ``run_job`` calls it before
    the audit, so that a bad input is the only line the run prints.
    """
    from huggingface_hub import constants

    from .lora import parse_lora_spec
    from .memory import model_folder

    check_ftfy()
    if settings.attention is not None:
        from diffusers.models.attention_dispatch import AttentionBackendName

        names = [b.value for b in AttentionBackendName]
        if settings.attention not in names:
            raise InputError(
                f"--attention {settings.attention}: unknown backend; choose from {', '.join(names)}"
            )
    device = placement_device(settings)
    dtype = resolve_dtype(settings.dtype, device)
    loras = [parse_lora_spec(spec) for spec in settings.lora]
    model = resolve_model(settings.model)
    path = Path(model).expanduser()
    if path.exists() and not (path / "model_index.json").is_file():
        raise InputError(f"--model {model}: folder has no model_index.json (not a diffusers model folder)")
    if not path.exists() and names_a_folder(model):
        raise InputError(f"--model {model}: folder not found")
    if not path.exists() and constants.HF_HUB_OFFLINE and model_folder(model) is None:
        raise _missing_weights(model, FileNotFoundError("model_index.json is not in the cache"))
    return model, path, device, dtype, loras


def load_pipeline(settings: RunSettings):
    """Load ``WanVACEPipeline`` for ``settings`` (model, dtype, device, offload, tiling, attention, compile).

    The VAE stays fp32 whatever the dtype (as diffusers' Wan examples load it). Offload modes need an
    accelerator. ``settings.lora`` / ``settings.fast`` hand the loaded pipeline to ``generation.lora`` /
    ``generation.profiles``. Missing weights raise a one-line :class:`InputError`.
    """
    import torch
    from diffusers import WanVACEPipeline
    from huggingface_hub import constants

    from .lora import apply_loras

    model, path, device, dtype, loras = check_loadable(settings)  # refused before the model loads
    source = str(path) if path.exists() else model
    try:
        with loading_bars_on_a_terminal_only():
            pipe = WanVACEPipeline.from_pretrained(
                source,
                dtype={"default": dtype, "vae": torch.float32},
                # offline: read the cache directly; asking the hub first prints a "Couldn't connect" warning
                local_files_only=constants.HF_HUB_OFFLINE,
            )
    except OSError as exc:
        if path.exists():
            raise InputError(f"--model {model}: cannot load ({str(exc).splitlines()[0][:200]})") from None
        raise _missing_weights(model, exc) from None
    pipe.set_progress_bar_config(disable=True)  # run_job reports steps through its own progress hook
    pipe._vacelab_loras = apply_loras(pipe, loras) if loras else []  # recorded in run.json
    place_pipeline(pipe, settings)
    pipe._vacelab_model = model  # recorded in run.json
    return pipe


@contextlib.contextmanager
def loading_bars_on_a_terminal_only() -> Iterator[None]:
    """Silence diffusers' and transformers' loading bars while stderr is no terminal (a log, a pipe), so
    that a run's stderr there holds messages only; on a terminal they show as usual."""
    if sys.stderr.isatty():
        yield
        return
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    libraries = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in libraries:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in libraries:
            if enabled:
                lib.enable_progress_bar()


def placement_device(settings: RunSettings) -> str:
    """The device ``settings`` resolve to, after checking that their offload mode can work there."""
    device = resolve_device(settings.device)
    if settings.offload not in OFFLOAD_MODES:
        raise InputError(f"--offload {settings.offload}: choose from {', '.join(OFFLOAD_MODES)}")
    if settings.offload != "none" and device == "cpu":
        raise InputError(
            f"--offload {settings.offload}: offloading moves weights between CPU and an accelerator, "
            "and none is in use (device cpu); use --offload none"
        )
    return device


def place_pipeline(pipe, settings: RunSettings) -> None:
    """Put a loaded pipeline (LoRAs already in) where ``settings`` say: on the device or offloaded, VAE
    tiling, attention backend, compile or the fast profile, in that order (compile sees the final modules).
    """
    import torch

    device = placement_device(settings)
    if settings.offload == "none":
        pipe.to(device)
    elif settings.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif settings.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        onload = torch.device(device)
        pipe.enable_group_offload(  # on CUDA the next block is copied on a side stream while one runs
            onload_device=onload,
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=onload.type == "cuda",
        )
    if settings.vae_tiling:
        pipe.vae.enable_tiling()
    pipe._vacelab_profile = None  # recorded in run.json
    if settings.fast:
        from .profiles import apply_fast_profile

        pipe._vacelab_profile = apply_fast_profile(
            pipe, device=device, compile=settings.compile or None, attention=settings.attention
        )
    else:
        set_attention(pipe, settings.attention)
        if settings.compile:
            pipe.transformer.compile_repeated_blocks(fullgraph=True)


def set_attention(pipe, backend: str | None) -> None:
    """Pin the transformer's attention backend: ``backend``, or diffusers' default when ``None``.

    diffusers' ``set_attention_backend`` also sets a process-wide active backend, which every pipeline
    loaded later without one inherits (seen on an H200: a pipeline loaded after one set to
    ``_native_cudnn`` failed with that backend). Pinning the default explicitly keeps each run's
    attention what its settings say, in batch and UI processes that load several pipelines, and the
    process-wide backend is put back, so that other diffusers models in the process are untouched.
    """
    from diffusers.utils import logging as diffusers_logging

    from .profiles import set_backend_locally

    name = backend or os.environ.get("DIFFUSERS_ATTN_BACKEND", "native")
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # its "experimental feature" warning on every call
    try:
        set_backend_locally(pipe.transformer, name)
    except (ValueError, RuntimeError, ImportError) as exc:
        raise InputError(f"--attention {name}: {str(exc).splitlines()[0]}") from None
    finally:
        diffusers_logging.set_verbosity(verbosity)


def set_flow_shift(pipe, shift: float) -> None:
    """Give ``pipe`` a scheduler of the same kind with ``flow_shift = shift`` (nothing changes if equal)."""
    if pipe.scheduler.config.get("flow_shift") != shift:
        pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=shift)


# ----------------------------------------------------------------------------------------------- hooks
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

    A forward pre-hook on the transformer replaces ``control_hidden_states_scale`` by zeros from that step
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

    handle = pipe.transformer.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
