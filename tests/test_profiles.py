"""The fast profile agrees with diffusers' defaults (CPU, tiny model); the GPU benchmark's own checks hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import run_tiny

from vacelab.generation.profiles import (
    EXACT_BACKENDS,
    _probe_backend,
    apply_fast_profile,
    cast_like_from_pretrained,
    pick_attention_backend,
)
from vacelab.testing import models

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"  # the scripts run as the user runs them


def script(name: str, *args, cuda: bool = True) -> subprocess.CompletedProcess:
    """Run ``benchmarks/NAME`` with ``args`` (``cuda=False``: with every CUDA device hidden)."""
    env = {**os.environ, **({} if cuda else {"CUDA_VISIBLE_DEVICES": ""})}
    command = [sys.executable, str(BENCH / name), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)


def test_probe_falls_back_past_backends_that_cannot_run_here():
    name, rejected = pick_attention_backend(
        "cpu", torch.float32, 16, candidates=("_native_cudnn", "flash", "native")
    )
    assert name == "native"
    assert set(rejected) == {"_native_cudnn", "flash"}
    assert "flash-attn" in rejected["flash"]  # the missing package is named


def test_probe_rejects_a_backend_that_is_not_exact(monkeypatch):
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    assert _probe_backend("_native_math", "cpu", torch.float32, 16) is None
    monkeypatch.setitem(
        _AttentionBackendRegistry._backends,
        AttentionBackendName._NATIVE_MATH,
        lambda query, **kwargs: torch.zeros_like(query),
    )
    reason = _probe_backend("_native_math", "cpu", torch.float32, 16)
    assert reason is not None and "max abs error" in reason
    name, rejected = pick_attention_backend("cpu", torch.float32, 16, candidates=("_native_math", "native"))
    assert name == "native" and "_native_math" in rejected


def test_cast_keeps_the_fp32_modules_diffusers_keeps():
    from vacelab.testing.tiny import build_tiny_pipeline

    model = build_tiny_pipeline().transformer
    cast_like_from_pretrained(model, torch.bfloat16)
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert dtypes["blocks.0.attn1.to_q.weight"] == torch.bfloat16
    assert dtypes["blocks.0.scale_shift_table"] == torch.float32
    assert dtypes["blocks.0.norm2.weight"] == torch.float32
    assert dtypes["condition_embedder.time_embedder.linear_1.weight"] == torch.float32


def test_fast_profile_agrees_with_defaults_on_the_tiny_pipeline():
    from vacelab.testing.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    default = run_tiny(pipe)
    info = apply_fast_profile(pipe, device="cpu")
    fast = run_tiny(pipe)
    assert info["attention"] in EXACT_BACKENDS and info["compile"] is None and info["dtype"] == "float32"
    assert info["guidance_batching"] is False
    assert np.abs(fast - default).max() < 1e-4
    # only this pipeline's transformer changed: diffusers' process-wide default backend did not
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    assert _AttentionBackendRegistry.get_active_backend()[0].value == "native"
    # the comparison can fail: another seed gives another output
    assert np.abs(run_tiny(pipe, seed=4) - default).max() > 1e-2


def test_batched_guidance_equals_two_passes():
    cfg = models.CONFIGS["tiny"]
    model = models.build_transformer(cfg, "cpu")
    inp = models.make_inputs(cfg, (3, 8, 8), 16, "cpu")
    with torch.inference_mode():
        two = models.guided_step(model, inp, torch.float32, batched=False)
        one = models.guided_step(model, inp, torch.float32, batched=True)
    assert two.shape == (1, 16, 3, 8, 8)
    torch.testing.assert_close(one, two, rtol=1e-4, atol=1e-4)


def test_analytic_flops_match_torch_flop_counter(monkeypatch):
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry
    from torch.utils.flop_counter import FlopCounterMode

    cfg = models.CONFIGS["tiny"]
    model = models.build_transformer(cfg, "cpu")
    inp = models.make_inputs(cfg, (3, 8, 8), 16, "cpu")
    # restored after the test: set_attention_backend also changes diffusers' process-wide default
    monkeypatch.setattr(
        _AttentionBackendRegistry, "_active_backend", _AttentionBackendRegistry._active_backend
    )
    model.set_attention_backend("_native_math")  # the math kernel is made of matmuls the counter sees
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(
            hidden_states=inp["x"],
            timestep=inp["t"],
            encoder_hidden_states=inp["cond"],
            control_hidden_states=inp["control"],
            return_dict=False,
        )
    assert models.forward_flops(cfg, tokens=3 * 4 * 4, text_len=16) == counter.get_total_flops()


@pytest.mark.parametrize("model", ["1.3b", "14b"])
def test_kernel_floor_covers_the_step(model):
    """The floor's kernels hold all the step's FLOPs but the embeddings: a floor that left work out would
    flatter every profile measured against it."""
    cfg, tokens, text_len = models.CONFIGS[model], 21 * 30 * 52, 512
    counted = sum(
        models.op_flops(kind, shape) * n for _, kind, shape, n in models.floor_ops(cfg, tokens, 512)
    )
    total = models.forward_flops(cfg, tokens, text_len)
    assert 0.99 * total < counted < total


def test_published_configs_build_the_published_sizes():
    def count(key):
        model = models.build_transformer(models.CONFIGS[key], "meta")
        dit = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("vace_"))
        return dit, sum(p.numel() for p in model.parameters())

    # The Wan2.1 DiTs have 1.42 B and 14.29 B parameters; VACE adds 15 resp. 8 full blocks with projections.
    dit, total = count("1.3b")
    assert round(dit / 1e9, 2) == 1.42 and round(total / 1e9, 2) == 2.15
    dit, total = count("14b")
    assert round(dit / 1e9, 2) == 14.29 and round(total / 1e9, 2) == 17.34


def test_gpu_step_tiny_runs_end_to_end(tmp_path):
    out = tmp_path / "gpu_step.json"
    args = ["--tiny", "--model", "a14b", "--extra", "fused_qkv,autotune", "--offload-modes", "group"]
    proc = script("gpu_step.py", *args, "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["tokens"] == 48 and res["latent_thw"] == [3, 8, 8]
    names = (
        "reference",
        "default",
        "fast_attention",
        "fast",
        "fast_batched",
        "fast_fused_qkv",
        "fast_autotune",
    )
    for name in names:
        assert "error" not in res["variants"][name], res["variants"][name]
        assert res["variants"][name]["s_per_step"] > 0
    assert set(res["agreement"]) == set(names[2:])
    assert all(v["agrees"] for v in res["agreement"].values()), res["agreement"]
    cfg = models.CONFIGS["tiny"]
    blocks = cfg["num_layers"] + len(cfg["vace_layers"])
    assert res["extras"]["fast_fused_qkv"] == {"fused_attention_modules": 2 * blocks}  # self + cross
    floor = res["kernel_floor"]
    assert [op["name"] for op in floor["ops"]][-2:] == ["self-attention", "cross-attention"]
    assert all(op["s"] > 0 and op["count"] > 0 for op in floor["ops"])
    assert floor["s_per_step"] == pytest.approx(floor["attention_s_per_step"] + floor["linear_s_per_step"])
    assert floor["max_exact_speedup_vs_default"] == pytest.approx(
        res["variants"]["default"]["s_per_step"] / floor["s_per_step"]
    )
    assert res["offload"] == {"skipped": "no CUDA device"}
    # --model a14b: the second (low-noise) expert built beside the first, one step on each
    second = res["second_expert"]
    assert second["parameters_b"] == pytest.approx(
        sum(p.numel() for p in models.build_transformer(cfg, "cpu").parameters()) / 1e9
    )
    for name in ("low_noise_default", "low_noise_fast"):
        assert res["variants"][name]["s_per_step"] > 0, res["variants"][name]
    assert "fast" in proc.stdout and "agreement" in proc.stdout


def test_whole_pipeline_memory_script_runs_vacelabs_path_on_the_tiny_configs(tmp_path):
    out = tmp_path / "memory.json"
    proc = script("gpu_pipeline_memory.py", "--tiny", "--model", "a14b", "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["job"]["frames"] == 9 and res["job"]["tokens"] == 3 * 4 * 7
    # UMT5's input embedding is shared with encoder.embed_tokens, as in the published model: counted once
    from transformers import UMT5Config, UMT5EncoderModel

    published = UMT5EncoderModel(UMT5Config(**models.UMT5_TINY))
    assert res["parameters_b"]["text_encoder"] == sum(p.numel() for p in published.parameters()) / 1e9
    assert res["parameters_b"]["transformer_2"] == res["parameters_b"]["transformer"] > 0  # two experts
    [row] = res["modes"]  # offload modes need an accelerator: on CPU only "none" runs
    assert row["mode"] == "none" and "error" not in row, row
    assert row["stages_s"]["generate"] > 0 and row["estimate_gib"] > 0
    assert "none" in proc.stdout.splitlines()[-1]


def test_whole_pipeline_memory_script_skips_cleanly_without_cuda():
    proc = script("gpu_pipeline_memory.py", cuda=False)
    assert proc.returncode == 0 and "no CUDA device" in proc.stdout, proc.stderr[-2000:]
    proc = script("gpu_pipeline_memory.py", "--modes", "group,fast", cuda=False)
    assert proc.returncode == 2 and "unknown fast" in proc.stderr


@pytest.mark.parametrize("argv", [[], ["--model", "14b"]])
def test_gpu_step_skips_cleanly_without_cuda(argv):
    proc = script("gpu_step.py", *argv, cuda=False)
    assert proc.returncode == 0 and "no CUDA device" in proc.stdout, proc.stderr[-2000:]


def test_compile_is_skipped_where_offload_hooks_sit_in_the_blocks():
    from vacelab.generation.profiles import fast_transformer
    from vacelab.testing.tiny import build_tiny_pipeline

    plain = build_tiny_pipeline().transformer
    info = fast_transformer(plain, device="cpu", compile=True, attention="native")
    assert info["compile"] and "compile_skipped" not in info
    assert all(b._compiled_call_impl is not None for b in plain.blocks)  # wrapped; compiled at first call

    hooked = build_tiny_pipeline().transformer
    hooked.enable_group_offload(
        onload_device=torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1
    )
    info = fast_transformer(hooked, device="cpu", compile=True, attention="native")
    assert info["compile"] is None and "offload" in info["compile_skipped"]
    assert all(b._compiled_call_impl is None for b in hooked.blocks)
    # --fast alone (compile=None) on a GPU compiles unless hooks are in the blocks: run.json says why not
    info = fast_transformer(hooked, device="cuda", compile=None, attention="native")
    assert info["compile"] is None and "offload" in info["compile_skipped"]
    info = fast_transformer(build_tiny_pipeline().transformer, device="cpu", compile=None, attention="native")
    assert info["compile"] is None and "compile_skipped" not in info  # CPU: never compiled, nothing skipped


def test_a_forced_backend_that_does_not_exist_is_an_input_error():
    from vacelab.errors import InputError
    from vacelab.generation.profiles import fast_transformer
    from vacelab.testing.tiny import build_tiny_pipeline

    with pytest.raises(InputError, match="attention warp"):
        fast_transformer(build_tiny_pipeline().transformer, device="cpu", attention="warp")
