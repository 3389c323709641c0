"""The lossy speed modes other than the cache: ``--fp8``, ``--preset`` and ``--scheduler euler``; and FA4
as a ``--fast`` candidate (CPU: what can be shown without a GPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import make_job

from vacelab import InputError, RunSettings, save_job
from vacelab.cli import main
from vacelab.generation.pipeline import load_pipeline
from vacelab.generation.presets import PRESETS
from vacelab.generation.run import run_job


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    return save_job(make_job(5), tmp_path_factory.mktemp("jobs") / "job", preview=False)


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    return load_pipeline(RunSettings(model=str(tiny_model_dir))).pipe


def cli_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    return err


def test_fp8_on_cpu_is_one_line_before_the_model_loads(job_dir, tmp_path, capsys):
    missing = tmp_path / "no-model"  # looked at after the refusal: it would be named otherwise
    argv = ["run", str(job_dir), "--prompt", "x", "--model", str(missing), "--device", "cpu", "--fp8"]
    err = cli_error(capsys, [*argv, "--out", str(tmp_path / "res")])
    assert err.startswith("error: --fp8: FP8 needs a CUDA GPU of compute capability 8.9") and "cpu" in err
    assert not (tmp_path / "res").exists()


def test_fp8_refusals_on_a_gpu_that_cannot_have_it(monkeypatch):
    import importlib.util

    from vacelab.generation.fp8 import check_fp8

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "torchao" else real_find_spec(name)
    )
    with pytest.raises(InputError, match="needs torchao"):
        check_fp8("cuda", "auto", "none")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA A100")
    with pytest.raises(InputError, match="A100 has compute capability 8.0"):
        check_fp8("cuda", "auto", "none")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device: (9, 0))
    check_fp8("cuda", "bf16", "model")  # an H100/H200: accepted
    with pytest.raises(InputError, match="--dtype fp16"):
        check_fp8("cuda", "fp16", "none")
    with pytest.raises(InputError, match="--offload group"):
        check_fp8("cuda", "auto", "group")


def test_an_unknown_preset_is_one_line(job_dir, tmp_path, capsys):
    argv = ["run", str(job_dir), "--prompt", "x", "--preset", "turbo", "--out", str(tmp_path / "res")]
    err = cli_error(capsys, argv)
    assert err.startswith("error: --preset turbo: unknown preset; choose from lightx2v, causvid")


def test_a_preset_fills_what_was_not_set_and_explicit_options_win():
    import argparse

    from vacelab.cli.run import register, settings_from_args

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())

    def parsed(*extra):
        return settings_from_args(parser.parse_args(["run", "job", *extra]))

    filled = parsed("--preset", "lightx2v")
    assert (filled.steps, filled.guidance, filled.shift, filled.scheduler) == (4, 1.0, 5.0, "euler")
    own = parsed("--preset", "lightx2v", "--steps", "50", "--scheduler", "unipc")  # 50 is the default
    assert (own.steps, own.guidance, own.scheduler) == (50, 1.0, "unipc")
    assert parsed("--steps", "7").steps == 7 and parsed().steps == RunSettings().steps
    # the library's rule: a field left at its default is filled; applying twice changes nothing
    settings = RunSettings(preset="causvid", guidance=3.0).with_preset()
    assert (settings.steps, settings.guidance) == (8, 3.0) and settings.with_preset() is settings


def test_a_preset_in_a_plan_table():
    from vacelab.manifest import build_settings

    settings = build_settings({"preset": "lightx2v"}, {"steps": 6})
    assert (settings.steps, settings.guidance, settings.scheduler) == (6, 1.0, "euler")
    # a mode (a later table) with a preset overrides the plan's [run]; a later table still wins over it
    settings = build_settings({"steps": 50, "guidance": 5.0}, {"preset": "lightx2v"}, {"guidance": 2.0})
    assert (settings.steps, settings.guidance) == (4, 2.0)


def test_every_preset_names_its_source_and_valid_values():
    for name, preset in PRESETS.items():
        assert preset.source and preset.lora and preset.credit, name
        RunSettings(**preset.values).validate()


def test_a_preset_run_is_recorded(pipe, tmp_path, caplog):
    settings = RunSettings(prompt="an empty street", preset="lightx2v", steps=2, composite=False)
    with caplog.at_level("WARNING", logger="vacelab"):
        result = run_job(make_job(5), tmp_path / "res", settings, pipeline=pipe)
    run = json.loads((tmp_path / "res" / "run.json").read_text())
    assert run["settings"]["preset"] == "lightx2v" and run["settings"]["scheduler"] == "euler"
    used = run["used"]["preset"]
    assert used["used"] == {"guidance": 1.0, "shift": 5.0, "scheduler": "euler"}
    assert used["overridden"] == {"steps": 2} and "LightX2V" in used["source"]
    assert result.run["used"]["shift"] == 5.0
    assert "no --lora is given" in caplog.text  # the recipe without its LoRA: said once


def test_euler_is_first_order_flow_euler_on_the_unipc_timesteps(pipe):
    """``--scheduler euler`` samples x + (sigma_next - sigma) * v on the pipeline's own timesteps: checked
    against a hand-written Euler loop on the scheduler the hook installs, and it differs from UniPC."""
    from vacelab.generation.hooks import scheduler_hook

    steps, saved = 4, pipe.scheduler
    with scheduler_hook(pipe, "euler", steps):
        euler = pipe.scheduler
        assert euler is not saved
    assert pipe.scheduler is saved  # restored
    euler.set_timesteps(steps)
    gen = torch.Generator().manual_seed(0)
    x, target = torch.randn(8, generator=gen), torch.randn(8)
    ours, by_hand = x.clone(), x.clone()
    sigmas = euler.sigmas
    for i, t in enumerate(euler.timesteps):
        ours = euler.step(torch.tanh(ours) + target, t, ours).prev_sample
        by_hand = by_hand + (sigmas[i + 1] - sigmas[i]) * (torch.tanh(by_hand) + target)
    torch.testing.assert_close(ours, by_hand, atol=1e-5, rtol=1e-5)
    saved.set_timesteps(steps)
    assert torch.allclose(saved.sigmas, sigmas)  # the same timesteps as UniPC


def test_euler_changes_the_output(pipe, tmp_path):
    base = RunSettings(prompt="an empty street", steps=3, composite=False)
    unipc = run_job(make_job(5), tmp_path / "a", base, pipeline=pipe).video
    euler = run_job(
        make_job(5), tmp_path / "b", RunSettings(**{**base.as_dict(), "scheduler": "euler"}), pipeline=pipe
    )
    assert not np.array_equal(unipc, euler.video)


# ------------------------------------------------------------------------------------- FA4 in --fast
def test_fa4_leaves_the_cpu_candidates_unchanged():
    from vacelab.generation.profiles import EXACT_BACKENDS, fast_transformer, pick_attention_backend, try_fa4
    from vacelab.testing.tiny import build_tiny_pipeline

    assert EXACT_BACKENDS == ("_flash_3", "_native_cudnn", "flash", "_native_flash", "native")
    assert try_fa4("native", "cpu", torch.float32, 16, 2) == ("native", "needs CUDA")
    transformer = build_tiny_pipeline().transformer
    info = fast_transformer(transformer, device="cpu")
    picked, _ = pick_attention_backend("cpu", torch.float32, transformer.config.attention_head_dim)
    assert info["attention"] == picked and info["fa4"] == "needs CUDA"


def test_fa4_probe_handles_unavailable_and_inexact(monkeypatch):
    import torch.nn.attention as attention

    from vacelab.generation import profiles

    reason = profiles._probe_fa4("cpu", torch.float32, 16)  # flash-attn-4 is not installed here
    assert reason is not None and attention.current_flash_attention_impl() is None
    calls = []
    monkeypatch.setattr(attention, "activate_flash_attention_impl", lambda name: calls.append(("on", name)))
    monkeypatch.setattr(attention, "restore_flash_attention_impl", lambda **kw: calls.append(("off",)))
    monkeypatch.setattr(profiles, "_probe_backend", lambda *a: "max abs error 0.5 against an fp32 reference")
    assert "max abs error" in profiles._probe_fa4("cuda", torch.bfloat16, 128)
    assert calls == [("on", "FA4"), ("off",)]  # an inexact FA4 is deactivated again


@pytest.mark.slow  # a subprocess importing diffusers and running the tiny step several times: 30-55 s here
def test_gpu_step_extras_dry_run_on_cpu(tmp_path):
    """benchmarks/gpu_step.py --tiny with the speed extras: a skipped cache step reproduces the computed
    step on identical inputs; FA4 and FP8, unavailable here, are noted and the script goes on."""
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "step.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_step.py"
    argv = [sys.executable, str(script), "--tiny", "--no-batched", "--no-floor", "--offload-modes", ""]
    argv += ["--steps-measured", "1", "--no-reference"]
    proc = subprocess.run(
        [*argv, "--extra", "fa4,cache,fp8", "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    cached = res["variants"]["fast_cache"]
    assert res["extras"]["fast_cache"]["skipped_steps"] == 1 + res["steps_measured"]
    assert cached["vs_default"]["rel_l2"] < 1e-2 and cached["s_per_step"] > 0
    assert "flash_attn" in res["extras"]["fast_fa4"]["probe"] and "fast_fa4" not in res["variants"]
    assert "torchao" in res["extras"]["fast_fp8"]["error"] and "fast_fp8" not in res["variants"]
