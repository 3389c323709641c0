"""`vacelab run` / run_job on the tiny random WanVACEPipeline (offline, CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import F, H, W, cli_env, diffusers_inputs, make_job

from vacelab import InputError, RunSettings, load_result, save_job
from vacelab.cli import main
from vacelab.generation.hooks import vace_end_hook
from vacelab.generation.pipeline import load_pipeline
from vacelab.generation.run import run_job
from vacelab.generation.settings import WAN_NEGATIVE_PROMPT
from vacelab.geometry import mask_latent

STEPS = 2


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    return save_job(make_job(), tmp_path_factory.mktemp("jobs") / "job", preview=False)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_pipeline(RunSettings(model=str(tiny_model_dir)))


@pytest.fixture(scope="module")
def pipe(loaded):
    """The bare ``WanVACEPipeline`` (run_job takes it as well as the LoadedPipeline around it)."""
    return loaded.pipe


def settings(**kw) -> RunSettings:
    return RunSettings(**{"prompt": "an empty street", "steps": STEPS, **kw})


# ------------------------------------------------------------------------------------------- the CLI
def test_cli_run_writes_results_and_keeps_kept_pixels(job_dir, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "res"
    code = main(
        [
            "run",
            str(job_dir),
            "--model",
            str(tiny_model_dir),
            "--prompt",
            "an empty street",
            "--steps",
            str(STEPS),
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    # stderr is no terminal here: messages only, no bar redraws (vacelab's, diffusers', transformers')
    assert "\r" not in printed.err and "Loading" not in printed.err and "it/s" not in printed.err, printed.err
    assert printed.err.splitlines()[-1].startswith(f"wrote {out}") and printed.out == f"{out}\n"
    for name in ("out_video.mp4", "out_video.gif", "compare.mp4", "arrays/video.npy", "run.json"):
        assert (out / name).is_file(), name
    result = load_result(out)
    job = make_job()
    assert result.video.shape == (F, H, W, 3) and result.video.dtype == np.uint8
    keep = ~job.mask
    assert np.array_equal(result.video[keep], job.video[keep])  # composite: KEEP pixels exact
    assert not np.array_equal(result.video[job.mask], job.video[job.mask])  # the model did generate
    run = result.run
    assert run["used"]["seed"] == 2025 and run["settings"]["steps"] == STEPS
    assert run["used"]["negative_prompt"] == f"{WAN_NEGATIVE_PROMPT}, gun, weapon"
    assert run["used"]["shift"] == 3.0
    assert run["used"]["model"] == str(tiny_model_dir)
    assert {"torch", "diffusers", "transformers", "vacelab"} <= set(run["versions"])
    assert {"read_job", "audit", "load", "generate", "composite", "write", "total"} <= set(run["timings"])
    assert run["memory"]["cpu_peak_rss_bytes"] > 0
    # compare.mp4 holds source | mask | output
    from vacelab.media import read_video

    compare, _ = read_video(out / "compare.mp4")
    assert compare.shape == (F, H, 3 * W + 8, 3)


def test_cli_refuses_existing_output_and_job_folder(job_dir, tiny_model_dir, tmp_path, capsys):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    for out in (occupied, job_dir, job_dir / "res"):
        code = main(["run", str(job_dir), "--model", str(tiny_model_dir), "--prompt", "x", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error: --out") and err.count("\n") == 1
    assert (occupied / "keep.txt").read_text() == "mine"
    assert not (job_dir / "res").exists()  # a results folder inside the job folder would change the input


def test_cli_refuses_bad_geometry(tiny_model_dir, tmp_path, capsys):
    job = make_job(frames=10)  # not 4n+1
    save_job(job, tmp_path / "bad", preview=False)
    code = main(
        [
            "run",
            str(tmp_path / "bad"),
            "--model",
            str(tiny_model_dir),
            "--prompt",
            "x",
            "--out",
            str(tmp_path / "res"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "BAD_GEOMETRY" in err and not (tmp_path / "res").exists()


def test_offload_needs_an_accelerator(job_dir, tiny_model_dir, tmp_path, capsys):
    code = main(
        [
            "run",
            str(job_dir),
            "--model",
            str(tiny_model_dir),
            "--prompt",
            "x",
            "--device",
            "cpu",
            "--offload",
            "model",
            "--out",
            str(tmp_path / "res"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "accelerator" in err
    # refused before the audit prints the job's warnings: the error is all the run says (contract)
    assert err.startswith("error: --offload model") and err.count("\n") == 1, err


def test_bad_lora_scale_and_attention_are_refused_before_the_model_loads(job_dir, tmp_path, capsys):
    base = ["run", str(job_dir), "--prompt", "x", "--model", str(tmp_path / "no-model"), "--out"]
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_text("not a safetensors file")
    cases = [
        (["--lora", str(tmp_path / "missing.safetensors")], "--lora", "no such file"),
        (["--lora", str(garbage)], "--lora", "not a readable .safetensors file"),
        (["--conditioning-scale", "inf"], "--conditioning-scale inf", "finite"),
        (["--guidance", "inf"], "--guidance inf", "finite"),
        (["--shift", "nan"], "--shift nan", "finite"),
        (["--seed", str(2**64)], f"--seed {2**64}", "64 bits"),
        (["--steps", "0"], "--steps 0", "at least 1"),
        (["--attention", "bogus"], "--attention bogus", "unknown backend; choose from"),
    ]
    for i, (extra, option, what) in enumerate(cases):
        code = main([*base, str(tmp_path / f"res{i}"), *extra])
        err = capsys.readouterr().err
        # one line, before the audit's warnings (the missing --model folder would be reported if the model
        # were looked at first)
        assert code == 2 and err.startswith(f"error: {option}") and err.count("\n") == 1, err
        assert what in err
        assert "--model" not in err and not (tmp_path / f"res{i}").exists()
    assert garbage.read_text() == "not a safetensors file"


def test_missing_weights_offline_is_one_line(job_dir, tmp_path):
    env = cli_env(tmp_path, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vacelab",
            "run",
            str(job_dir),
            "--prompt",
            "x",
            "--model",
            "nobody-here/no-such-vace-model",
            "--out",
            str(tmp_path / "res"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    error_lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(error_lines) == 1 and error_lines[0].startswith("error:"), proc.stderr  # before the audit
    assert "Couldn't connect" not in proc.stderr  # offline: the cache is read without asking the hub
    message = error_lines[0]
    assert "nobody-here/no-such-vace-model" in message and "hf download" in message
    assert str(tmp_path / "hf") in message  # where it looked: the HF cache in use
    assert "--model FOLDER" in message and "HF_HUB_OFFLINE=1" in message and len(message) < 300
    assert not (tmp_path / "res").exists()


def test_out_of_memory_is_one_line_with_a_suggestion(job_dir, tiny_model_dir, tmp_path, capsys, monkeypatch):
    from diffusers import WanVACEPipeline

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(WanVACEPipeline, "__call__", oom)
    code = main(
        ["run", str(job_dir), "--model", str(tiny_model_dir), "--prompt", "x", "--out", str(tmp_path / "res")]
    )
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and err.rstrip().endswith(errors[0]) and "Traceback" not in err
    assert (
        errors[0].startswith("error: out of memory")
        and "retry with" in errors[0]
        and "--vae-tiling" in errors[0]
    )
    assert not (tmp_path / "res").exists()


# --------------------------------------------------------------------------- behaviour of the model
def test_identical_to_a_direct_diffusers_call(pipe, tmp_path):
    job = make_job(negative="")
    direct = pipe(prompt="an empty street", negative_prompt="blurry", **diffusers_inputs(job)).frames[0]
    direct = (direct * 255).round().astype(np.uint8)
    result = run_job(
        job, tmp_path / "res", settings(negative_prompt="blurry", composite=False), pipeline=pipe
    )
    assert np.array_equal(result.video, direct)
    assert np.array_equal(load_result(tmp_path / "res").video, direct)


def test_a_pipeline_built_in_memory_runs_like_the_loaded_one(pipe, tmp_path):
    """``place_pipeline`` gives a pipeline the user built (their own components) what ``load_pipeline``
    gives a loaded one; the tiny folder was saved from the same seed, so the outputs are the same."""
    from vacelab import place_pipeline
    from vacelab.testing.tiny import build_tiny_pipeline

    job = make_job()
    own = place_pipeline(build_tiny_pipeline(), settings(steps=1))
    assert own.profile is None and own.device == "cpu" and own.experts == ("transformer",)
    loaded = run_job(job, tmp_path / "loaded", settings(steps=1), pipeline=pipe).video
    built = run_job(job, tmp_path / "built", settings(steps=1), pipeline=own).video
    assert np.array_equal(built, loaded)
    with pytest.raises(InputError, match="offload group: offloading moves weights"):
        place_pipeline(build_tiny_pipeline(), settings(offload="group", device="cpu"))


def test_group_offload_prefetches_on_a_cuda_stream(monkeypatch):
    """What docs/performance.md measured (group offload 6% slower than none on an H200) is with the next
    block copied on a side stream; without it every block waits for its own weights."""
    from vacelab import place_pipeline
    from vacelab.testing.tiny import build_tiny_pipeline

    calls = []
    for device, stream in [("cuda", True), ("cuda:1", True), ("mps", False)]:
        own = build_tiny_pipeline()
        monkeypatch.setattr(own, "enable_group_offload", lambda **kw: calls.append(kw))
        place_pipeline(own, settings(offload="group", device=device))
        assert calls[-1]["use_stream"] is stream and calls[-1]["onload_device"] == torch.device(device)
        assert calls[-1]["offload_type"] == "block_level" and calls[-1]["num_blocks_per_group"] == 1


def test_deterministic_for_a_seed(pipe, tmp_path):
    job = make_job()
    a = run_job(job, tmp_path / "a", settings(seed=7, steps=1, composite=False), pipeline=pipe).video
    b = run_job(job, tmp_path / "b", settings(seed=7, steps=1, composite=False), pipeline=pipe).video
    c = run_job(job, tmp_path / "c", settings(seed=8, steps=1, composite=False), pipeline=pipe).video
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def capture(monkeypatch, pipe, name):
    """Record the arguments and result of ``pipe.<name>`` (patched on the instance)."""
    seen = []
    original = getattr(pipe, name)

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append((args, kwargs, out))
        return out

    monkeypatch.setattr(pipe, name, spy)
    return seen


def test_negative_prompt_reaches_the_pipeline(pipe, tmp_path, monkeypatch):
    seen = capture(monkeypatch, pipe, "encode_prompt")
    run_job(make_job(), tmp_path / "a", settings(steps=1), pipeline=pipe)
    run_job(make_job(), tmp_path / "b", settings(steps=1, negative_prompt="only this"), pipeline=pipe)
    assert [kw["negative_prompt"] for _, kw, _ in seen] == [
        f"{WAN_NEGATIVE_PROMPT}, gun, weapon",
        "only this",
    ]


def test_mask_conditioning_equals_the_geometry(pipe, tmp_path, monkeypatch):
    job = make_job()
    conditions = capture(monkeypatch, pipe, "preprocess_conditions")
    masks = capture(monkeypatch, pipe, "prepare_masks")
    controls = []
    handle = pipe.transformer.register_forward_pre_hook(
        lambda m, a, kw: controls.append(kw["control_hidden_states"][0, 32:].clone()), with_kwargs=True
    )
    try:
        run_job(job, tmp_path / "ref", settings(steps=1), pipeline=pipe)
        run_job(job, tmp_path / "aligned", settings(steps=1, mask_encoding="aligned"), pipeline=pipe)
    finally:
        handle.remove()
    reference, aligned = mask_latent(job.mask, 0, "reference"), mask_latent(job.mask, 0, "aligned")
    assert not np.array_equal(reference, aligned)  # the job is built so that they differ
    video, mask, _ = conditions[0][2]  # what diffusers made of our inputs: same size, not resized
    expected = torch.from_numpy(job.video).permute(3, 0, 1, 2)[None].float() / 255 * 2 - 1
    torch.testing.assert_close(video, expected, atol=1e-6, rtol=0)
    assert torch.equal(mask[0, 0], torch.from_numpy(job.mask).float())
    assert len(masks) == 1  # aligned replaced diffusers' prepare_masks
    assert np.array_equal(masks[0][2][0].numpy(), reference)
    assert np.array_equal(controls[0].numpy(), reference)  # cond pass, reference encoding
    assert np.array_equal(controls[-1].numpy(), aligned)  # the transformer saw the aligned mask
    assert "prepare_masks" not in vars(pipe) or vars(pipe)["prepare_masks"].__name__ == "spy"  # restored


def test_first_reference_is_the_first_latent_step(pipe, tmp_path, monkeypatch):
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 220
    blue = np.zeros((H, W, 3), np.uint8)
    blue[..., 2] = 220
    blue[20:60, 30:90] = 255
    job = make_job(refs=[red, blue])
    latents = capture(monkeypatch, pipe, "prepare_video_latents")
    masks = capture(monkeypatch, pipe, "prepare_masks")
    run_job(job, tmp_path / "res", settings(steps=1), pipeline=pipe)

    def encode(image):  # one reference as diffusers encodes it: [-1, 1], one latent step, normalised
        x = torch.from_numpy(image).permute(2, 0, 1)[None, :, None].float() / 127.5 - 1
        z = pipe.vae.encode(x).latent_dist.mode()
        mean = torch.tensor(pipe.vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std = torch.tensor(pipe.vae.config.latents_std).view(1, -1, 1, 1, 1)
        return ((z - mean) / std)[0, :, 0]

    conditioning = latents[0][2][0]  # [32, 2 + T, h, w]
    assert conditioning.shape[1] == 2 + 3
    torch.testing.assert_close(conditioning[:16, 0], encode(red), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(conditioning[:16, 1], encode(blue), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(conditioning[:16, 0], encode(blue), atol=1e-2)
    assert np.array_equal(masks[0][2][0].numpy(), mask_latent(job.mask, 2, "reference"))


def test_vace_end_changes_only_the_later_steps(pipe):
    job = make_job()
    steps = 4

    def latents_per_step(fraction):
        seen = []

        def on_step(p, i, t, tensors):
            seen.append(tensors["latents"].clone())
            return {}

        kwargs = {**diffusers_inputs(job), "num_inference_steps": steps}
        with vace_end_hook(pipe, fraction, steps):
            if fraction >= 1:
                assert not pipe.transformer._forward_pre_hooks  # F = 1 installs nothing
            frames = pipe(prompt="an empty street", callback_on_step_end=on_step, **kwargs).frames[0]
        assert not pipe.transformer._forward_pre_hooks  # removed on exit
        return seen, frames

    plain, plain_frames = latents_per_step(1.0)
    half, half_frames = latents_per_step(0.5)  # VACE control for steps 0 and 1 only
    assert torch.equal(plain[0], half[0]) and torch.equal(plain[1], half[1])
    assert not torch.equal(plain[2], half[2]) and not np.array_equal(plain_frames, half_frames)


def test_vace_end_through_run_job(pipe, tmp_path):
    job = make_job()
    full = run_job(job, tmp_path / "a", settings(composite=False), pipeline=pipe)
    cut = run_job(job, tmp_path / "b", settings(composite=False, vace_end=0.5), pipeline=pipe)
    assert full.run["used"]["vace_control_steps"] == STEPS and cut.run["used"]["vace_control_steps"] == 1
    assert not np.array_equal(full.video, cut.video)


def test_run_json_is_complete_json(pipe, tmp_path):
    result = run_job(make_job(), tmp_path / "res", settings(steps=1, color_match=True), pipeline=pipe)
    run = json.loads((tmp_path / "res" / "run.json").read_text())
    assert run == json.loads(json.dumps(result.run, default=str))
    assert run["used"]["color_match"]["applied"] is True
    assert 0 < run["timings"]["wrapper_overhead_fraction"] < 1


def test_memory_preflight_suggests_an_offload_mode(monkeypatch, caplog):
    from vacelab import InputError
    from vacelab.generation.pipeline import LoadRequest, resolve_model
    from vacelab.generation.preflight import memory_preflight
    from vacelab.geometry import Geometry

    geometry = Geometry(frames=81, height=480, width=832)
    gib = 1024**3
    # not cached here: the known size of the public checkpoint is used; bf16 on a GPU
    hub = LoadRequest(resolve_model("1.3b"), Path("1.3b"), device="cuda", dtype=torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (12 * gib, 24 * gib))
    with pytest.raises(InputError, match="offload none: this run needs about .* use --offload model"):
        memory_preflight(hub, RunSettings(model="1.3b"), geometry)
    record = memory_preflight(hub, RunSettings(model="1.3b", offload="model"), geometry)
    assert record["estimate"]["per_mode_gib"]["model"] < 12 < record["estimate"]["per_mode_gib"]["none"]
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * gib, 24 * gib))
    with caplog.at_level("WARNING", logger="vacelab"):  # weights fit, activations may not
        memory_preflight(hub, RunSettings(model="1.3b", offload="sequential"), geometry)
    assert "warning: --offload sequential" in caplog.text


def test_attention_backend_is_pinned_per_pipeline(tiny_model_dir):
    """diffusers' set_attention_backend sets a process-wide default: later pipelines must not inherit it."""

    def backends(p):
        return {
            str(getattr(m.processor, "_attention_backend", None))
            for m in p.transformer.modules()
            if getattr(m, "processor", None) is not None
        }

    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    before = _AttentionBackendRegistry.get_active_backend()[0]
    math_pipe = load_pipeline(RunSettings(model=str(tiny_model_dir), attention="_native_math")).pipe
    assert _AttentionBackendRegistry.get_active_backend()[0] == before  # other models in the process
    plain = load_pipeline(RunSettings(model=str(tiny_model_dir))).pipe
    assert backends(math_pipe) == {"AttentionBackendName._NATIVE_MATH"}
    assert backends(plain) == {"AttentionBackendName.NATIVE"}


def test_option_values_may_start_with_a_dash():
    from vacelab.cli import build_parser, join_dash_values

    parser = build_parser()
    argv = ["run", "JOB", "--negative-prompt", "-blurry", "--prompt", "-1 apples", "--fast", "--seed", "-3"]
    args = parser.parse_args(join_dash_values(argv, parser))
    assert (args.negative_prompt, args.prompt, args.fast, args.seed) == ("-blurry", "-1 apples", True, -3)
    # an option after an option that takes a value is still an option (argparse's own error follows)
    assert join_dash_values(["run", "JOB", "--prompt", "--fast"], parser)[-2:] == ["--prompt", "--fast"]
