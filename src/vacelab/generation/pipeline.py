"""The pipeline of a run: diffusers' ``WanVACEPipeline`` loaded, placed, and described.

Nothing here re-implements Wan: the model is ``WanVACEPipeline.from_pretrained``. The stages, each once
per run:

1. :func:`check_loadable`: everything about loading that can be refused without loading (ftfy, LoRA
   files, the model folder or cache entry, offload on this device, dtype, attention backend); it resolves
   the model, device and dtype into a :class:`LoadRequest`.
2. :func:`load_pipeline`: ``from_pretrained``, LoRAs, then :func:`place_pipeline`.
3. :func:`place_pipeline`: device or offload, VAE tiling, FP8 (``--fp8``), attention backend, compile or
   the fast profile, applied to every expert (:mod:`~vacelab.generation.experts`).

Both return a :class:`LoadedPipeline`: the pipeline with what vacelab knows of it (model, device, dtype,
experts, LoRAs, fast profile), the one object the rest of a run reads. ``pipe`` itself carries nothing
of vacelab's.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..weights import check_weights, load_failed, quiet_loading
from .experts import expert_names, experts
from .settings import DTYPES, MODEL_ALIASES, OFFLOAD_MODES, RunSettings


@dataclass
class LoadRequest:
    """What :func:`check_loadable` resolved: the model (hub id or folder), its local ``path`` (which may
    not exist), the device, the torch dtype, the parsed LoRA files and whether to read local files only."""

    model: str
    path: Path
    device: str
    dtype: object  # torch.dtype
    loras: list = field(default_factory=list)
    local_only: bool = False  # read the model's files from the folder or cache only (weights.check_weights)
    facts: object = None  # model.ModelFacts read from its files, when they are here


@dataclass
class LoadedPipeline:
    """A placed ``WanVACEPipeline`` and what vacelab knows of it (all of it recorded in ``run.json``).

    ``device`` is the execution device; ``dtype`` the first expert's; ``experts`` the names of the
    pipeline's transformers (``transformer``, and ``transformer_2`` for a two-expert model); ``loras``
    the adapters loaded; ``profile`` what the fast profile set (``None`` without ``fast``); ``parallel``
    the split of a parallel run's rank (``parallel.enable``: ranks, mode, backend).
    """

    pipe: object
    model: str
    device: str
    dtype: object
    experts: tuple[str, ...]
    loras: list[dict] = field(default_factory=list)
    profile: dict | None = None
    fp8: dict | None = None  # what --fp8 quantised (generation/fp8.py)
    parallel: dict | None = None

    @classmethod
    def describe(cls, pipe, model: str, *, loras=(), profile=None, fp8=None, parallel=None) -> LoadedPipeline:
        """The record of ``pipe`` as it is placed now (device and dtype read from the pipeline)."""
        return cls(
            pipe=pipe,
            model=model,
            device=str(pipe._execution_device),
            dtype=pipe.transformer.dtype,
            experts=expert_names(pipe),
            loras=list(loras),
            profile=profile,
            fp8=fp8,
            parallel=parallel,
        )


def as_loaded(pipeline, settings: RunSettings) -> LoadedPipeline:
    """``pipeline`` as a :class:`LoadedPipeline`: itself, or a bare ``WanVACEPipeline`` the caller placed
    (described as it is, under ``settings.model``)."""
    if isinstance(pipeline, LoadedPipeline):
        return pipeline
    return LoadedPipeline.describe(pipeline, settings.model)


# ---------------------------------------------------------------------------------------- resolution
def resolve_model(model: str) -> str:
    """``1.3b`` / ``14b`` -> hub id; anything else is returned as given (hub id or folder)."""
    return MODEL_ALIASES.get(model.strip().lower(), model)


def torch_is_cpu_only() -> bool:
    """True when the installed torch can only run on the CPU (a build without CUDA or ROCm, not on macOS),
    read from ``torch/version.py`` without importing torch (seconds): ``auto`` is then ``cpu``."""
    if sys.platform == "darwin":  # mps
        return False
    if "torch" in sys.modules:
        version = sys.modules["torch"].version
        return not (version.cuda or version.hip)
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return False
    return all(re.search(rf"^{name}\b[^=]*=\s*None\s*$", text, re.M) for name in ("cuda", "hip"))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``mps``, else ``cpu``."""
    if device != "auto":
        return device
    if torch_is_cpu_only():
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str):
    """``auto`` -> bf16 on an accelerator, fp32 on CPU; otherwise the named torch dtype."""
    import torch

    if dtype not in DTYPES:
        raise InputError(f"choose from {', '.join(DTYPES)}", field="dtype", value=dtype)
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


# --------------------------------------------------------------------------------------------- loading
def check_loadable(settings: RunSettings) -> LoadRequest:
    """Everything about loading ``settings`` that can be refused without loading: ftfy, the attention
    backend, offload on this device, dtype, the LoRA files, the model folder or, for a hub id, its cache
    entry or the hub (``weights.check_weights``), and (where its files are here) what the model can
    honour (``model.check_model``: experts, geometry).

    Returns the resolved :class:`LoadRequest` for :func:`load_pipeline`; ``run_job`` calls it once, before
    the audit, so that a bad input is the only line the run prints. Every refusal up to the model's weights
    comes before torch is imported (a CPU-only torch is recognised from its files), so it takes no time.
    """
    from .lora import lora_specs
    from .memory import model_folder
    from .model import ModelFacts, check_model

    check_ftfy()
    if settings.attention is not None:
        from diffusers.models.attention_dispatch import AttentionBackendName

        names = [b.value for b in AttentionBackendName]
        if settings.attention not in names:
            raise InputError(
                f"unknown backend; choose from {', '.join(names)}",
                field="attention",
                value=settings.attention,
            )
    device = placement_device(settings)
    if settings.fp8:
        from .fp8 import check_fp8

        check_fp8(device, settings.dtype, settings.offload)
    if settings.dtype not in DTYPES:
        raise InputError(f"choose from {', '.join(DTYPES)}", field="dtype", value=settings.dtype)
    loras = lora_specs(settings)
    model = resolve_model(settings.model)
    path = Path(model).expanduser()
    if path.exists() and not (path / "model_index.json").is_file():
        raise InputError(
            "folder has no model_index.json (not a diffusers model folder)", field="model", value=model
        )
    local_only = check_weights(model, "model_index.json", field="model")
    folder = model_folder(model)
    facts = ModelFacts.from_folder(folder) if folder is not None else None
    if facts is not None:  # else checked once loaded (run_job)
        check_model(settings, model, facts)
    dtype = resolve_dtype(settings.dtype, device)
    return LoadRequest(
        model=model, path=path, device=device, dtype=dtype, loras=loras, local_only=local_only, facts=facts
    )


def load_pipeline(settings: RunSettings, request: LoadRequest | None = None) -> LoadedPipeline:
    """Load ``WanVACEPipeline`` for ``settings`` (model, dtype, device, offload, tiling, attention, compile).

    ``request``: what :func:`check_loadable` already resolved for ``settings`` (checked here otherwise).
    The VAE stays fp32 whatever the dtype (as diffusers' Wan examples load it). Offload modes need an
    accelerator. ``settings.lora`` / ``settings.fast`` hand the loaded pipeline to ``generation.lora`` /
    ``generation.profiles``. Missing weights raise a one-line :class:`InputError`.
    """
    import torch
    from diffusers import WanVACEPipeline

    from .lora import apply_loras

    request = request or check_loadable(settings)  # refused before the model loads
    model, path = request.model, request.path
    source = str(path) if path.exists() else model
    try:
        with quiet_loading():  # messages only if it loads; no bars into a log
            pipe = WanVACEPipeline.from_pretrained(
                source,
                dtype={"default": request.dtype, "vae": torch.float32},
                # offline or the hub silent: read the cache directly (asking the hub first warns and retries)
                local_files_only=request.local_only,
            )
    except OSError as exc:
        if path.exists():
            reason = f"cannot load ({str(exc).splitlines()[0][:200]})"
            raise InputError(reason, field="model", value=model) from None
        raise load_failed(model, request.local_only, field="model") from exc
    pipe.set_progress_bar_config(disable=True)  # run_job reports steps through its own progress hook
    loras = apply_loras(pipe, request.loras) if request.loras else []
    return place_pipeline(pipe, settings, request=request, loras=loras)


def placement_device(settings: RunSettings) -> str:
    """The device ``settings`` resolve to, after checking that their offload mode can work there."""
    device = resolve_device(settings.device)
    if settings.offload not in OFFLOAD_MODES:
        raise InputError(f"choose from {', '.join(OFFLOAD_MODES)}", field="offload", value=settings.offload)
    if settings.offload != "none" and device == "cpu":
        raise InputError(
            "offloading moves weights between CPU and an accelerator, and none is in use (device cpu); "
            "use --offload none",
            field="offload",
            value=settings.offload,
        )
    return device


def place_pipeline(
    pipe, settings: RunSettings, *, request: LoadRequest | None = None, loras=()
) -> LoadedPipeline:
    """Put a pipeline (LoRAs already in) where ``settings`` say: on the device or offloaded, VAE tiling,
    attention backend, compile or the fast profile, in that order (compile sees the final modules), on
    every expert. Works as well for a pipeline built in memory as for a loaded one.

    ``request`` (from :func:`check_loadable`) gives the device and model name already resolved; ``loras``
    what was loaded into ``pipe``. Returns the :class:`LoadedPipeline`.
    """
    import torch

    device = request.device if request is not None else placement_device(settings)
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
    fp8 = None
    if settings.fp8:  # before compile, which then sees the FP8 layers
        from .fp8 import apply_fp8, check_fp8

        dtype = "bf16" if pipe.transformer.dtype == torch.bfloat16 else str(pipe.transformer.dtype)
        check_fp8(device, dtype, settings.offload)
        fp8 = apply_fp8(pipe)
    profile = split = None
    if settings.fast:
        from .profiles import EXACT_BACKENDS, apply_fast_profile

        candidates, compile = EXACT_BACKENDS, settings.compile or None
        if settings.parallel > 1:  # a backend the ranks can split; compile not tried with the split
            from .parallel import parallel_backends, resolve_mode, ring_backends

            mode = resolve_mode(settings, pipe.transformer.config.num_attention_heads)
            usable = parallel_backends() if mode == "ulysses" else ring_backends()
            candidates, compile = tuple(b for b in EXACT_BACKENDS if b in usable), False
        profile = apply_fast_profile(
            pipe, device=device, compile=compile, attention=settings.attention, candidates=candidates
        )
    else:
        for _, module in experts(pipe):
            set_attention(module, settings.attention)
            if settings.compile:
                module.compile_repeated_blocks(fullgraph=True)
    if settings.parallel > 1:
        from . import parallel

        if parallel.rank() is None:
            raise InputError("a parallel pipeline is placed by the ranks run_job starts", field="parallel")
        split = parallel.enable(pipe, settings)
    model = request.model if request is not None else settings.model
    return LoadedPipeline.describe(pipe, model, loras=loras, profile=profile, fp8=fp8, parallel=split)


def set_attention(transformer, backend: str | None) -> None:
    """Pin an expert's attention backend: ``backend``, or diffusers' default when ``None``.

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
        set_backend_locally(transformer, name)
    except (ValueError, RuntimeError, ImportError) as exc:
        raise InputError(str(exc).splitlines()[0], field="attention", value=name) from None
    finally:
        diffusers_logging.set_verbosity(verbosity)
