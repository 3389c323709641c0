"""The fast profile of ``vacelab run --fast``: exact speed-ups only, each with a fallback.

What it sets on the pipeline's transformer:

- bf16 weights on CUDA (what diffusers keeps in fp32 when loading, ``_keep_in_fp32_modules``, stays fp32);
- the fastest *exact* attention backend that works here, chosen by running each candidate once on a small
  problem and comparing it with an fp32 reference (``pick_attention_backend``);
- ``compile_repeated_blocks`` (regional ``torch.compile`` of the transformer blocks) on CUDA.

What it does not do: batching the two guidance passes. ``WanVACEPipeline.__call__`` calls the transformer
twice per step (cond, then uncond) and combines the results in between, so batching them needs a fork of the
denoising loop; ``benchmarks/gpu_step.py`` measures what batching would bring instead. Nothing lossy either:
no FP8, no block caches (``FirstBlockCache`` is wrong for VACE), no step distillation (use ``--lora``).
"""

from __future__ import annotations

import math

from vacelab.errors import InputError

# Fastest first. All compute exact softmax attention; they differ only in kernel and rounding order.
# flash / _flash_3 need the flash-attn packages; _native_cudnn / _native_flash are PyTorch's own SDPA kernels.
EXACT_BACKENDS = ("_flash_3", "_native_cudnn", "flash", "_native_flash", "native")
# FlashAttention-4 (package flash-attn-4) behind PyTorch's flash SDPA path
# (torch.nn.attention.activate_flash_attention_impl, process-wide): tried on CUDA after the pick above, and
# kept only if exact and faster than it at the model's full-size self-attention (:func:`try_fa4`)
FA4 = "FA4"
FA4_BACKEND = "_native_flash"
FA4_TOKENS = 32760  # 81 frames at 480x832: the documented default size


def cast_like_from_pretrained(model, dtype) -> None:
    """Cast ``model`` to ``dtype`` in place; ``_keep_in_fp32_modules`` stay fp32 as in ``from_pretrained``."""
    import torch

    keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, param in model.named_parameters():
        target = torch.float32 if keep.intersection(name.split(".")) else dtype
        if param.dtype != target:
            param.data = param.data.to(target)
    for name, buf in model.named_buffers():
        if buf.is_floating_point() and not keep.intersection(name.split(".")) and buf.dtype != dtype:
            buf.data = buf.data.to(dtype)


def _probe_backend(name: str, device, dtype, head_dim: int) -> str | None:
    """Run backend ``name`` on a small attention problem; return None if exact, else why not."""
    import torch
    from diffusers.models.attention_dispatch import (
        AttentionBackendName,
        _check_attention_backend_requirements,
        dispatch_attention_fn,
    )

    try:
        backend = AttentionBackendName(name)
        _check_attention_backend_requirements(backend)
        gen = torch.Generator(device="cpu").manual_seed(0)
        # Self-attention and cross-attention shapes, neither a multiple of 64 tokens (like 32,760 and 512).
        for q_len, kv_len in ((333, 333), (333, 77)):
            q, k, v = (torch.randn(1, n, 2, head_dim, generator=gen) for n in (q_len, kv_len, kv_len))
            ref = torch.nn.functional.scaled_dot_product_attention(
                *(x.to(dtype).float().transpose(1, 2) for x in (q, k, v))
            ).transpose(1, 2)
            out = dispatch_attention_fn(*(x.to(device, dtype) for x in (q, k, v)), backend=backend)
            err = (out.float().cpu() - ref).abs().max().item()
            tol = 1e-4 if dtype == torch.float32 else 2e-2
            if not math.isfinite(err) or err > tol:
                return f"max abs error {err:.3g} against an fp32 reference (tolerance {tol})"
    except Exception as exc:  # a missing package, an unsupported device/dtype/shape: try the next one
        return _reason(exc)
    return None


def pick_attention_backend(device, dtype, head_dim: int = 128, candidates=EXACT_BACKENDS) -> tuple[str, dict]:
    """The first backend of ``candidates`` that runs here and matches an fp32 reference.

    Returns ``(name, tried)`` where ``tried`` maps each rejected candidate to the reason. Falls back to
    ``"native"`` (PyTorch SDPA with its own kernel choice, diffusers' default) when none passes.
    """
    tried = {}
    for name in candidates:
        reason = _probe_backend(name, device, dtype, head_dim)
        if reason is None:
            return name, tried
        tried[name] = reason
    return "native", tried


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


def _probe_fa4(device, dtype, head_dim: int) -> str | None:
    """Activate FA4 for PyTorch's flash SDPA path and probe it as the others; ``None`` when exact (FA4 is
    left active), else why not (and FA4 is left inactive)."""
    try:
        from torch.nn.attention import activate_flash_attention_impl, restore_flash_attention_impl

        activate_flash_attention_impl(FA4)
    except Exception as exc:  # an older torch, no flash-attn-4, a GPU it does not support
        return _reason(exc)
    reason = _probe_backend(FA4_BACKEND, device, dtype, head_dim)
    if reason is not None:
        restore_flash_attention_impl(_raise_warn=False)
    return reason


def _seconds_per_call(name: str, q, k, v, repeats: int = 3) -> float:
    """Mean wall time of one ``dispatch_attention_fn`` call with backend ``name`` (CUDA, after a warm-up)."""
    import time

    import torch
    from diffusers.models.attention_dispatch import AttentionBackendName, dispatch_attention_fn

    backend = AttentionBackendName(name)
    dispatch_attention_fn(q, k, v, backend=backend)
    torch.cuda.synchronize(q.device)
    start = time.perf_counter()
    for _ in range(repeats):
        dispatch_attention_fn(q, k, v, backend=backend)
    torch.cuda.synchronize(q.device)
    return (time.perf_counter() - start) / repeats


def try_fa4(best: str, device, dtype, head_dim: int, heads: int) -> tuple[str, str]:
    """FA4 against the exact backend ``best`` already picked: ``(backend, note)``.

    On CUDA, FA4 is probed like the others, then timed against ``best`` on one self-attention of
    ``FA4_TOKENS`` tokens with the model's heads; it is kept (backend ``_native_flash`` with the FA4
    impl active) only when exact and faster. Otherwise ``best`` stays, FA4 is deactivated, and the note
    says why (e.g. not installed, not CUDA, slower).
    """
    import torch

    if torch.device(device).type != "cuda":
        return best, "needs CUDA"
    reason = _probe_fa4(device, dtype, head_dim)
    if reason is not None:
        return best, reason
    from torch.nn.attention import restore_flash_attention_impl

    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v = (
        torch.randn(1, FA4_TOKENS, heads, head_dim, generator=gen, device=device, dtype=dtype)
        for _ in range(3)
    )
    fa4 = _seconds_per_call(FA4_BACKEND, q, k, v)
    restore_flash_attention_impl(_raise_warn=False)
    other = _seconds_per_call(best, q, k, v)
    timing = f"{fa4 * 1e3:.2f} ms vs {best} {other * 1e3:.2f} ms per self-attention of {FA4_TOKENS} tokens"
    if fa4 >= other:
        return best, f"exact but not faster: {timing}"
    from torch.nn.attention import activate_flash_attention_impl

    activate_flash_attention_impl(FA4)
    return FA4_BACKEND, f"selected: {timing}"


def set_backend_locally(model, name: str) -> None:
    """``model.set_attention_backend(name)`` without changing diffusers' process-wide default backend.

    diffusers' ``set_attention_backend`` also makes ``name`` the active backend of every other model in the
    process; the fast profile must only touch the model it is applied to.
    """
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    previous = _AttentionBackendRegistry._active_backend
    try:
        model.set_attention_backend(name)
    finally:
        _AttentionBackendRegistry.set_active_backend(previous)


def _offload_hooks_in_blocks(transformer) -> bool:
    """True when group/sequential offload (or layerwise casting) put hooks on the repeated blocks.

    Their weight moves run inside each block's forward, which ``fullgraph`` compilation cannot trace; model
    offload hooks only the whole transformer and leaves the blocks compilable.
    """
    names = set(getattr(transformer, "_repeated_blocks", ()))
    return any(
        hasattr(m, "_hf_hook") or hasattr(m, "_diffusers_hook")
        for block in transformer.modules()
        if type(block).__name__ in names
        for m in block.modules()
    )


def fast_transformer(
    transformer,
    *,
    device,
    compile: bool | None = None,
    attention: str | None = None,
    candidates: tuple[str, ...] = EXACT_BACKENDS,
) -> dict:
    """Apply the fast profile to a ``WanVACETransformer3DModel`` in place; return what was set.

    ``compile=None`` compiles on CUDA only (Inductor on CPU needs a C++ toolchain and gains little) and not
    when offload hooks sit inside the blocks. ``compile=True`` with such hooks is skipped with a note.
    ``attention`` forces a backend name instead of probing ``candidates``.
    """
    import torch

    device = torch.device(device)
    info: dict = {"device": str(device)}
    if device.type == "cuda" and transformer.dtype == torch.float32:
        cast_like_from_pretrained(transformer, torch.bfloat16)
    info["dtype"] = str(transformer.dtype).removeprefix("torch.")

    head_dim = transformer.config.attention_head_dim
    if attention is None:
        attention, tried = pick_attention_backend(device, transformer.dtype, head_dim, candidates)
        info["attention_rejected"] = tried
        heads = transformer.config.num_attention_heads
        attention, info["fa4"] = try_fa4(attention, device, transformer.dtype, head_dim, heads)
    try:
        set_backend_locally(transformer, attention)
    except (ValueError, RuntimeError, ImportError) as exc:
        raise InputError(str(exc).splitlines()[0], field="attention", value=attention) from None
    info["attention"] = attention

    if compile is None:
        compile = device.type == "cuda"
    if compile and _offload_hooks_in_blocks(transformer):
        info["compile_skipped"] = "offload hooks inside the transformer blocks (group/sequential offload)"
        compile = False
    if compile:
        transformer.compile_repeated_blocks(fullgraph=True)
    info["compile"] = "compile_repeated_blocks(fullgraph=True)" if compile else None
    info["guidance_batching"] = False  # see the module docstring
    return info


def apply_fast_profile(
    pipe,
    *,
    device,
    compile: bool | None = None,
    attention: str | None = None,
    candidates: tuple[str, ...] = EXACT_BACKENDS,
) -> dict:
    """Apply the fast profile to every expert of ``pipe`` (call after LoRAs are loaded); return what was set.

    The dict is meant for ``run.json``: device, dtype, attention backend (and the rejected candidates with
    their reasons), compile, guidance_batching; for a two-expert pipeline, one such dict per expert. The
    backend picked for the first expert is used for the others (same dtype, same head size).
    """
    from .experts import experts

    profiles = {}
    for name, module in experts(pipe):
        profiles[name] = fast_transformer(
            module, device=device, compile=compile, attention=attention, candidates=candidates
        )
        attention = profiles[name]["attention"]
    return profiles["transformer"] if len(profiles) == 1 else profiles
