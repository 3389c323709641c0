"""One denoising step of Wan2.1 VACE at full size: diffusers' defaults against vacelab's fast profile.

Builds the FULL-SIZE VACE transformer (1.3B, or 14B with ``--model 14b``) from its published config with
random weights (nothing is downloaded) and times one denoising step = both guidance passes (cond + uncond
transformer forwards) at 81x480x832: control_hidden_states [1, 96, 21, 60, 104], text embeds [1, 512, 4096].

Variants, all on the same model and inputs:
  reference      fp32 weights and matmuls (no TF32): the yardstick for "exact"; run last, being the slowest
                 (skipped with --no-reference, and for 14B on a GPU under 100 GB: fp32 14B is 69 GB)
  default        diffusers' defaults: bf16 transformer (``_keep_in_fp32_modules`` in fp32), default SDPA
                 attention, two guidance passes, no compile
  fast_attention default + the attention backend the fast profile picks (no compile)
  fast           vacelab's fast profile (``vacelab.generation.profiles.fast_transformer``): bf16, picked
                 attention backend, compile_repeated_blocks; two guidance passes
  fast_batched   fast + the two guidance passes batched (batch 2): measured here, not in the profile
  fast_<extra>   with --extra: candidates added on top of fast, one after the other (fused_qkv: diffusers'
                 fuse_qkv_projections; autotune: compile mode max-autotune-no-cudagraphs; fa4:
                 FlashAttention-4 behind PyTorch's flash SDPA path, where flash-attn-4 imports and is exact;
                 cache: the time of a step the --cache step cache SKIPS (identical inputs, so its output
                 must equal the computed one); fp8: --fp8's torchao FP8 blocks, recompiled - lossy, and
                 last, as it changes the weights). One that cannot run here is noted under "extras".
  kernel floor   not a variant: every matmul and attention of the step timed alone at its real shape and
                 summed (the fastest SDPA kernel that runs). No exact profile built on these kernels can beat
                 it, so default / floor bounds any exact speed-up on this GPU (skip with --no-floor)
  offload_*      peak memory and time of the TRANSFORMER ALONE (not the full pipeline: no UMT5, no VAE) under
                 group offload (block level, 1 block per group, CUDA stream) and sequential offload
                 (accelerate.cpu_offload); "none" = default's figure; "model" offload moves whole models, so
                 the transformer's peak under it equals "none"'s.

Prints s/step (median of --steps-measured after --warmup), peak memory, achieved TFLOP/s (analytic FLOPs of
attention + linear layers) against the GPU's dense bf16 peak, the ratio to the default, and max abs / relative
differences of each variant's guided output against the default and against the fp32 reference.
Writes all of it as JSON to --out. Exits 0 with a message where no CUDA device exists (``--tiny`` runs the
same code on a tiny config on CPU in seconds, to check the script before spending GPU time).

On a GPU machine without diffusers, carry its wheel (pure Python) and run from the repository root:
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  PYTHONPATH=/tmp/site python3 benchmarks/gpu_step.py --out $OUT/gpu_step.json
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vacelab.testing.models import (  # noqa: E402 - the published configs, built with random weights
    CONFIGS,
    build_transformer,
    floor_ops,
    forward_flops,
    guided_step,
    make_inputs,
    op_flops,
)

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, by device-name substring (first match wins).
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756),
    ("H100", 989),
    ("H200", 989),
    ("H800", 989),
    ("H20", 148),
    ("A100", 312),
    ("L40S", 362),
    ("L4", 121),
    ("RTX 4090", 165),
    ("A10G", 70),
)
EXTRAS = ("fused_qkv", "autotune", "fa4", "cache", "fp8")  # --extra candidates, see run()


def kernel_floor(cfg: dict, tokens: int, text_len: int, device, dtype, repeats: int = 5) -> dict:
    """Time each matmul and attention of the step alone, at its real shape, and add them up.

    The sum is what one step would take if nothing but these kernels ran (every elementwise op, norm,
    rope and launch gap free): no exact profile built on the same kernels can be faster. Attention takes
    the fastest SDPA kernel that runs here; each kernel's time is the median of ``repeats`` calls.
    """
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]
    if device.type != "cuda":
        backends.append(SDPBackend.MATH)  # on a GPU the math kernel would build a 25 GB score matrix
    gen = torch.Generator(device="cpu").manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    def timed(fn) -> float:
        fn()  # warm-up (kernel selection, allocation)
        times = []
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    ops = []
    with torch.inference_mode():
        for name, kind, shape, count in floor_ops(cfg, tokens, text_len):
            entry = {
                "name": name,
                "shape": list(shape),
                "count": count,
                "tflop": op_flops(kind, shape) / 1e12,
            }
            if kind == "linear":
                x, w = rand(shape[0], shape[1]), rand(shape[2], shape[1])
                entry["s"] = timed(lambda x=x, w=w: F.linear(x, w))
            else:
                heads, lq, lk, hd = shape
                q, k, v = rand(1, heads, lq, hd), rand(1, heads, lk, hd), rand(1, heads, lk, hd)
                entry["backends"] = {}
                for backend in backends:
                    try:
                        with sdpa_kernel(backend):
                            entry["backends"][backend.name] = timed(
                                lambda q=q, k=k, v=v: F.scaled_dot_product_attention(q, k, v)
                            )
                    except RuntimeError as exc:
                        entry["backends"][backend.name] = f"{type(exc).__name__}: {str(exc)[:120]}"
                timings = {b: t for b, t in entry["backends"].items() if isinstance(t, float)}
                entry["backend"] = min(timings, key=timings.get)
                entry["s"] = timings[entry["backend"]]
                q = k = v = None
            entry["tflops"] = entry["tflop"] / entry["s"]
            ops.append(entry)
    per_forward = sum(op["s"] * op["count"] for op in ops)
    attention = sum(op["s"] * op["count"] for op in ops if "backend" in op)
    return {
        "what": "the step's matmul and attention kernels alone at their real shapes, summed: a lower bound",
        "ops": ops,
        "s_per_step": 2 * per_forward,  # two guidance passes
        "attention_s_per_step": 2 * attention,
        "linear_s_per_step": 2 * (per_forward - attention),
        "tflop_per_step": 2 * sum(op["tflop"] * op["count"] for op in ops),
    }


def peak_tflops(name: str) -> float | None:
    return next((float(p) for key, p in PEAK_BF16_TFLOPS if key in name), None)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device, warmup: int, measured: int) -> dict:
    """Run ``fn`` warmup + measured times; return times, median, peak memory and the last output."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    out = None
    for i in range(warmup + measured):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
        log(f"    step {i + 1}/{warmup + measured}: {times[-1]:.3f} s{' (warm-up)' if i < warmup else ''}")
    res = {
        "warmup_s": times[:warmup],
        "times_s": times[warmup:],
        "s_per_step": statistics.median(times[warmup:]),
    }
    if device.type == "cuda":
        res["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return res, out


def compare(out, ref) -> dict:
    diff = (out.float() - ref.float()).abs()
    return {"max_abs_diff": diff.max().item(), "rel_l2": (diff.norm() / ref.float().norm()).item()}


_T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f} s] {msg}", flush=True)


def run(args) -> dict:
    import diffusers
    import torch

    from vacelab.generation.profiles import (
        cast_like_from_pretrained,
        fast_transformer,
        pick_attention_backend,
        set_backend_locally,
    )

    device = torch.device("cpu" if args.tiny else "cuda")
    cfg = CONFIGS["tiny" if args.tiny else args.model]
    frames, height, width = (9, 64, 64) if args.tiny else (args.frames, args.height, args.width)
    text_len = 16 if args.tiny else 512
    latent_thw = ((frames - 1) // 4 + 1, height // 8, width // 8)
    tokens = latent_thw[0] * (latent_thw[1] // 2) * (latent_thw[2] // 2)
    flops_step = 2 * forward_flops(cfg, tokens, text_len)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak = args.peak_tflops or (peak_tflops(gpu) if device.type == "cuda" else None)
    bf16 = torch.bfloat16
    res = {
        "device": gpu,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "model": "tiny" if args.tiny else args.model,
        "config": cfg,
        "video": {"frames": frames, "height": height, "width": width},
        "latent_thw": list(latent_thw),
        "tokens": tokens,
        "text_len": text_len,
        "tflop_per_step": flops_step / 1e12,
        "peak_bf16_tflops": peak,
        "steps_measured": args.steps_measured,
        "variants": {},
    }
    variants = res["variants"]
    log(f"{res['model']} on {gpu}: {tokens} tokens, {flops_step / 1e12:.1f} TFLOP per step (2 passes)")

    def record(name: str, fn, warmup: int, measured: int):
        log(f"{name} ...")
        try:
            figures, out = measure(fn, device, warmup, measured)
        except Exception as exc:
            traceback.print_exc()
            variants[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            save(res, args.out)
            log(f"{name} FAILED: {variants[name]['error']}")
            return None
        figures["tflops"] = flops_step / figures["s_per_step"] / 1e12
        if peak:
            figures["fraction_of_peak"] = figures["tflops"] / peak
        variants[name] = figures
        save(res, args.out)
        return out

    inp = make_inputs(cfg, latent_thw, text_len, device)
    # built in fp32 and rounded, so that the fp32 reference (rebuilt last, same seed) has the same weights
    model = build_transformer(cfg, device, dtype=None if not args.no_reference else bf16)
    cast_like_from_pretrained(model, bf16)
    log(f"built {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters")
    outputs = {}
    with torch.inference_mode():
        outputs["default"] = record(
            "default", lambda: guided_step(model, inp, bf16, False), args.warmup, args.steps_measured
        )

        if not args.no_floor:
            log("kernel floor: each matmul and attention alone ...")
            try:
                res["kernel_floor"] = kernel_floor(cfg, tokens, text_len, device, bf16)
                log(f"kernel floor: {res['kernel_floor']['s_per_step']:.3f} s/step")
            except Exception as exc:
                traceback.print_exc()
                res["kernel_floor"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            save(res, args.out)

        backend, rejected = pick_attention_backend(device, bf16, cfg["attention_head_dim"])
        res["attention_backend"] = {"picked": backend, "rejected": rejected}
        log(f"attention backend picked: {backend}; rejected: {rejected}")
        try:
            set_backend_locally(model, backend)  # the fp32 reference model keeps the default
            outputs["fast_attention"] = record(
                "fast_attention",
                lambda: guided_step(model, inp, bf16, False),
                args.warmup,
                args.steps_measured,
            )
            res["profile"] = fast_transformer(
                model, device=device, attention=backend, compile=None if not args.no_compile else False
            )
            log(f"fast profile: {res['profile']}")
            # compile happens in the first warm-up step; a second absorbs any recompile
            outputs["fast"] = record(
                "fast", lambda: guided_step(model, inp, bf16, False), args.warmup + 1, args.steps_measured
            )
            if outputs["fast"] is None and res["profile"]["compile"]:
                log("retrying the fast profile with fullgraph=False")
                model.compile_repeated_blocks(fullgraph=False)
                outputs["fast"] = record(
                    "fast", lambda: guided_step(model, inp, bf16, False), args.warmup + 1, args.steps_measured
                )
                res["profile"]["compile"] = "compile_repeated_blocks(fullgraph=False)"
            if not args.no_batched:
                outputs["fast_batched"] = record(
                    "fast_batched",
                    lambda: guided_step(model, inp, bf16, True),
                    args.warmup + 1,
                    args.steps_measured,
                )
            for extra in [e for e in args.extra.split(",") if e]:  # candidates, each on top of "fast"
                name = f"fast_{extra}"
                if extra == "fused_qkv":  # one q|k|v matmul per self-attention, one k|v per cross-attention
                    model.fuse_qkv_projections()
                    fused = sum(bool(getattr(m, "fused_projections", False)) for m in model.modules())
                    res.setdefault("extras", {})[name] = {"fused_attention_modules": fused}
                elif extra == "autotune":  # Inductor picks matmul configs by timing them
                    torch._dynamo.reset()
                    model.compile_repeated_blocks(fullgraph=True, mode="max-autotune-no-cudagraphs")
                    res.setdefault("extras", {})[name] = {"compile_mode": "max-autotune-no-cudagraphs"}
                elif extra == "fa4":
                    outputs[name] = fa4_variant(name, model, inp, cfg, device, backend, record, res, args)
                    continue
                elif extra == "cache":
                    outputs[name] = cache_variant(name, model, inp, record, res, args)
                    continue
                elif extra == "fp8":  # irreversible: the last extra
                    from vacelab.generation.fp8 import quantize_transformer

                    try:
                        quantize_transformer(model)
                    except Exception as exc:  # no torchao, no FP8 kernels here
                        res.setdefault("extras", {})[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                        log(f"{name}: unavailable ({res['extras'][name]['error']})")
                        continue
                    torch._dynamo.reset()
                    if res["profile"]["compile"]:
                        model.compile_repeated_blocks(fullgraph=True)
                    res.setdefault("extras", {})[name] = {"quantized": "blocks, vace_blocks (torchao)"}
                outputs[name] = record(
                    name, lambda: guided_step(model, inp, bf16, False), args.warmup + 1, args.steps_measured
                )
        except Exception as exc:
            traceback.print_exc()
            res["profile_error"] = f"{type(exc).__name__}: {exc}"[:500]

    summarize(res, outputs)
    save(res, args.out)

    if args.model == "a14b":  # the low-noise expert, built beside the first as a two-expert pipeline holds it
        res["second_expert"] = second_expert(args, cfg, device, inp, record)
        save(res, args.out)

    model = None  # free the GPU for the offload measurements
    gc.collect()
    torch._dynamo.reset()
    res["offload"] = offload_memory(args, cfg, device, inp, record, variants)

    if not args.no_reference:  # last: the slowest part, and the timings above are saved already
        model = build_transformer(cfg, device)  # same seed: the fp32 weights the bf16 model was rounded from
        tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        with torch.inference_mode():
            outputs["reference"] = record(
                "reference", lambda: guided_step(model, inp, torch.float32, False), 0, 1
            )
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        model = None
        summarize(res, outputs)
    return res


def fa4_variant(name, model, inp, cfg, device, backend: str, record, res, args):
    """The fast profile with FlashAttention-4 as its attention (where it imports and probes exact), then
    the picked backend put back; ``res["extras"][name]`` says what the probe and a timing found."""
    import torch
    from torch.nn.attention import activate_flash_attention_impl, restore_flash_attention_impl

    from vacelab.generation.profiles import FA4_BACKEND, _probe_fa4, set_backend_locally, try_fa4

    dtype, head_dim, heads = torch.bfloat16, cfg["attention_head_dim"], cfg["num_attention_heads"]
    note = res.setdefault("extras", {})[name] = {"probe": _probe_fa4(device, dtype, head_dim) or "exact"}
    if note["probe"] != "exact":
        log(f"{name}: unavailable ({note['probe']})")
        return None
    restore_flash_attention_impl(_raise_warn=False)
    if device.type == "cuda":  # the --fast decision at full size: FA4 stays active only if faster
        note["self_attention"] = try_fa4(backend, device, dtype, head_dim, heads)[1]
    activate_flash_attention_impl("FA4")
    set_backend_locally(model, FA4_BACKEND)
    try:
        return record(
            name, lambda: guided_step(model, inp, dtype, False), args.warmup + 1, args.steps_measured
        )
    finally:
        restore_flash_attention_impl(_raise_warn=False)
        set_backend_locally(model, backend)


def cache_variant(name, model, inp, record, res, args):
    """The step time when ``--cache`` skips: step 0 computed, every later step skipped (identical inputs,
    threshold infinite); the output must equal the computed step's (``vs_default`` in the JSON)."""
    import torch

    from vacelab.generation.stepcache import step_cache

    dtype, step = torch.bfloat16, [0]

    def skipped_step():
        step[0] += 1
        return guided_step(model, inp, dtype, False)

    with step_cache([("transformer", model)], float("inf"), 10**9, lambda: step[0]) as cache:
        guided_step(model, inp, dtype, False)  # step 0: computed, keeps the residuals
        out = record(name, skipped_step, 1, args.steps_measured)
    res.setdefault("extras", {})[name] = {"skipped_steps": len(cache.record()["skipped"])}
    return out


def second_expert(args, cfg, device, inp, record) -> dict:
    """Wan2.2 A14B's low-noise expert (same architecture, other random weights): the memory of both experts
    resident, one guided step with diffusers' defaults (``low_noise_default``) and with the fast profile
    (``low_noise_fast``)."""
    import torch

    from vacelab.generation.profiles import fast_transformer

    bf16 = torch.bfloat16
    model = build_transformer(cfg, device, dtype=bf16, seed=1)
    info = {"parameters_b": sum(p.numel() for p in model.parameters()) / 1e9}
    if device.type == "cuda":
        info["both_experts_allocated_gib"] = torch.cuda.memory_allocated(device) / 2**30
    log(f"second expert: {info}")
    step = lambda: guided_step(model, inp, bf16, False)  # noqa: E731
    with torch.inference_mode():
        record("low_noise_default", step, args.warmup, args.steps_measured)
        info["profile"] = fast_transformer(model, device=device, compile=False if args.no_compile else None)
        record("low_noise_fast", step, args.warmup + 1, args.steps_measured)
    return info


def summarize(res: dict, outputs: dict) -> None:
    """Differences of every bf16 variant to the default and the fp32 reference, speed-ups, agreement."""
    variants = res["variants"]
    for name, out in outputs.items():
        if out is None or name == "reference":
            continue
        if outputs.get("default") is not None:
            variants[name]["vs_default"] = compare(out, outputs["default"])
        if outputs.get("reference") is not None:
            variants[name]["vs_fp32_reference"] = compare(out, outputs["reference"])
    base = variants.get("default", {}).get("s_per_step")
    floor = res.get("kernel_floor", {}).get("s_per_step")
    for fig in variants.values():
        if base and "s_per_step" in fig:
            fig["speedup_vs_default"] = base / fig["s_per_step"]
        if floor and "s_per_step" in fig:
            fig["times_kernel_floor"] = fig["s_per_step"] / floor
    if base and floor:
        res["kernel_floor"]["max_exact_speedup_vs_default"] = base / floor
    res["agreement"] = agreement(variants)


def agreement(variants: dict) -> dict:
    """Does each bf16 variant agree with the exact result as closely as diffusers' defaults do?"""
    out = {}
    default_err = variants.get("default", {}).get("vs_fp32_reference", {}).get("rel_l2")
    for name in [n for n in variants if n.startswith("fast")]:
        fig = variants[name]
        if default_err is not None and "vs_fp32_reference" in fig:
            err = fig["vs_fp32_reference"]["rel_l2"]
            out[name] = {
                "rel_l2_vs_fp32": err,
                "default_rel_l2_vs_fp32": default_err,
                "agrees": err <= 2 * default_err + 1e-3,
                "criterion": "relative L2 error against fp32 at most 2x the default's (+1e-3)",
            }
        elif "vs_default" in fig:
            err = fig["vs_default"]["rel_l2"]
            out[name] = {
                "rel_l2_vs_default": err,
                "agrees": err <= 5e-2,
                "criterion": "no fp32 reference: relative L2 difference to the default at most 5e-2",
            }
    return out


def offload_memory(args, cfg, device, inp, record, variants) -> dict:
    """Peak memory of one step of the transformer alone under group and sequential offload."""
    import torch

    modes = [m for m in args.offload_modes.split(",") if m]
    if device.type != "cuda" or not modes:
        log("offload modes: skipped (need a CUDA device)" if modes else "offload modes: none asked")
        return {"skipped": "no CUDA device" if modes else "none asked"}
    out = {
        "measured": "transformer alone, one guided step (2 passes), default attention, no compile",
        "none": variants.get("default", {}).get("peak_memory_gib"),
        "model": "equals none for the transformer: model offload keeps it whole on the GPU while it runs",
    }
    for mode in modes:
        name = f"offload_{mode}"
        try:
            torch.cuda.empty_cache()
            model = build_transformer(cfg, device, dtype=torch.bfloat16).to("cpu")
            torch.cuda.empty_cache()
            if mode == "group":
                model.enable_group_offload(
                    onload_device=device,
                    offload_device=torch.device("cpu"),
                    offload_type="block_level",
                    num_blocks_per_group=1,
                    use_stream=True,
                )
            elif mode == "sequential":
                from accelerate import cpu_offload

                cpu_offload(model, execution_device=device)
            else:
                raise ValueError(f"unknown offload mode {mode!r}")
            with torch.inference_mode():
                record(name, lambda m=model: guided_step(m, inp, torch.bfloat16, False), 1, 1)
        except Exception as exc:
            traceback.print_exc()
            variants[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        out[mode] = variants[name].get("peak_memory_gib", variants[name].get("error"))
        model = None
    return out


def report(res: dict) -> None:
    print(
        f"\n{res['model']} VACE transformer, {res['video']}, {res['tokens']} tokens, device {res['device']}, "
        f"torch {res['torch']}, diffusers {res['diffusers']}"
    )
    print(
        f"{'variant':<20}{'s/step':>9}{'x default':>11}{'TFLOP/s':>9}{'% peak':>8}{'peak GiB':>10}"
        f"{'maxdiff vs def':>16}{'rel vs fp32':>13}"
    )
    for name, fig in res["variants"].items():
        if "error" in fig:
            print(f"{name:<20} FAILED: {fig['error'][:90]}")
            continue
        cells = [
            f"{fig['s_per_step']:9.3f}",
            f"{fig.get('speedup_vs_default', float('nan')):11.2f}",
            f" {fig['tflops']:8.4g}",
            f"{100 * fig.get('fraction_of_peak', float('nan')):8.1f}",
            f"{fig.get('peak_memory_gib', float('nan')):10.2f}",
            f"{fig.get('vs_default', {}).get('max_abs_diff', float('nan')):16.4g}",
            f"{fig.get('vs_fp32_reference', {}).get('rel_l2', float('nan')):13.4g}",
        ]
        print(f"{name:<20}" + "".join(cells))
    floor = res.get("kernel_floor", {})
    if "s_per_step" in floor:
        print(
            f"kernel floor: {floor['s_per_step']:.3f} s/step "
            f"(attention {floor['attention_s_per_step']:.3f} s, "
            f"matmuls {floor['linear_s_per_step']:.3f} s): no exact profile on these kernels beats the "
            f"default by more than {floor.get('max_exact_speedup_vs_default', float('nan')):.2f}x"
        )
        for op in floor["ops"]:
            print(f"  {op['name']:<18} x{op['count']:<4} {op['s'] * 1e3:9.3f} ms {op['tflops']:8.4g} TFLOP/s "
                  f"{op.get('backend', '')}")  # fmt: skip
    elif floor:
        print(f"kernel floor FAILED: {floor.get('error')}")
    print(f"attention backend: {res.get('attention_backend')}")
    print(f"agreement: {res.get('agreement')}")
    print(f"offload (peak GiB): {res.get('offload')}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", choices=["1.3b", "14b", "a14b"], default="1.3b", help="a14b: Wan2.2 A14B, both experts"
    )
    parser.add_argument(
        "--tiny", action="store_true", help="tiny config on CPU: checks the script in seconds"
    )
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps-measured", type=int, default=3)
    parser.add_argument("--no-batched", action="store_true", help="skip the batched-guidance variant")
    parser.add_argument("--no-reference", action="store_true", help="skip the fp32 reference step")
    parser.add_argument("--no-floor", action="store_true", help="skip the kernel floor (kernels alone)")
    parser.add_argument(
        "--extra",
        default="",
        help="comma list of candidates measured on top of the fast profile, in order: fused_qkv "
        "(diffusers' fuse_qkv_projections), autotune (compile mode max-autotune-no-cudagraphs)",
    )
    parser.add_argument(
        "--no-compile", action="store_true", help="fast profile without compile_repeated_blocks"
    )
    parser.add_argument("--offload-modes", default=None, help="comma list of group,sequential ('' for none)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, TFLOP/s")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    unknown = set(filter(None, args.extra.split(","))) - set(EXTRAS)
    if unknown:
        parser.error(
            f"--extra {args.extra}: unknown {', '.join(sorted(unknown))}; choose from {', '.join(EXTRAS)}"
        )
    if args.offload_modes is None:
        args.offload_modes = "group,sequential" if args.model == "1.3b" else ""

    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("gpu_step: no CUDA device here, nothing measured (use --tiny to check the script on CPU)")
        return 0
    if (
        args.model == "14b"
        and not args.tiny
        and torch.cuda.get_device_properties(0).total_memory < 100 * 2**30
    ):
        args.no_reference = True  # the fp32 14B model alone is 69 GB: an H200 (141 GB) holds it, an H100 not
    if args.model == "a14b" and not args.tiny:
        args.no_reference = True  # two bf16 experts (68 GB) and an fp32 one (69 GB) exceed an H200
    if args.tiny:
        torch.set_num_threads(min(4, torch.get_num_threads()))
    # batch 2 (fast_batched) recompiles for its own static shape instead of a slower dynamic-shape graph
    torch._dynamo.config.automatic_dynamic_shapes = False
    for limit in ("cache_size_limit", "recompile_limit"):  # the name changed across torch versions
        if hasattr(torch._dynamo.config, limit):
            setattr(torch._dynamo.config, limit, 64)
    with contextlib.suppress(Exception):
        import diffusers.utils.logging as dlog

        dlog.set_verbosity_error()
    res = run(args)
    report(res)
    save(res, args.out)
    if args.out:
        print(f"wrote {args.out}")
    return 0


def save(res: dict, out: Path | None) -> None:
    """Write the figures so far (after every variant: a run cut short still leaves its results)."""
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(res, indent=2, default=str))
        tmp.replace(out)


if __name__ == "__main__":
    sys.exit(main())
