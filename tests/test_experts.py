"""Two-expert models (Wan2.2 VACE-Fun A14B) on a tiny two-expert pipeline built offline: every feature on
both experts, the boundary and the low-noise guidance as diffusers applies them, refusals for one expert."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import diffusers_inputs, make_job, make_lora

from vacelab import RunSettings, load_result, save_job
from vacelab.cli import main
from vacelab.generation.pipeline import load_pipeline
from vacelab.generation.run import run_job
from vacelab.testing.tiny import save_tiny_pipeline

STEPS = 4  # with flow shift 3: timesteps 999, 900, 750, 500; the default boundary 0.875 splits 2 + 2
PROMPT, NEGATIVE = "an empty street", "blurry"


@pytest.fixture(scope="module")
def two_dir(tmp_path_factory):
    """A tiny two-expert WanVACEPipeline (boundary_ratio 0.875) saved with ``save_pretrained``."""
    return save_tiny_pipeline(tmp_path_factory.mktemp("two") / "model", experts=2)


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    return save_job(make_job(), tmp_path_factory.mktemp("jobs") / "job", preview=False)


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    return [make_lora(root / f"l{i}", seed=20 + i) for i in range(2)]


def bare(folder, **call):
    """The plain diffusers call on the saved pipeline (``boundary_ratio`` passed to ``from_pretrained``)."""
    from diffusers import WanVACEPipeline

    boundary = call.pop("boundary_ratio", None)
    extra = {} if boundary is None else {"boundary_ratio": boundary}
    pipe = WanVACEPipeline.from_pretrained(str(folder), **extra)
    pipe.set_progress_bar_config(disable=True)
    inputs = {**diffusers_inputs(make_job(), steps=STEPS), **call}
    frames = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, **inputs).frames[0]
    return (frames * 255).round().astype(np.uint8), pipe


def cli_run(capsys, model, job, out, *extra) -> tuple[int, str]:
    args = ["run", job, "--model", model, "--prompt", PROMPT, "--negative-prompt", NEGATIVE]
    code = main(
        [*map(str, args), "--steps", str(STEPS), "--no-composite", "--out", str(out), *map(str, extra)]
    )
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------------- as diffusers runs it
@pytest.mark.parametrize(
    "extra, call",
    [([], {}), (["--guidance-2", 2.0, "--boundary", 0.6], {"guidance_scale_2": 2.0, "boundary_ratio": 0.6})],
)
def test_a_two_expert_run_gives_the_bare_diffusers_frames(two_dir, job_dir, tmp_path, capsys, extra, call):
    code, err = cli_run(capsys, two_dir, job_dir, tmp_path / "res", *extra)
    assert code == 0, err
    expected, pipe = bare(two_dir, **dict(call))
    got = load_result(tmp_path / "res").video
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # within one level
    used = load_result(tmp_path / "res").run["used"]["experts"]
    boundary = call.get("boundary_ratio", 0.875)
    assert used["boundary"] == boundary
    assert used["guidance"] == {"transformer": 5.0, "transformer_2": call.get("guidance_scale_2", 5.0)}
    # the steps each expert ran (counted by hooks) are diffusers' own switch: t >= boundary * 1000
    pipe.scheduler.set_timesteps(STEPS)
    high = [i for i, t in enumerate(pipe.scheduler.timesteps) if t >= boundary * 1000]
    assert used["steps"] == {"transformer": high, "transformer_2": [i for i in range(STEPS) if i not in high]}
    assert used["steps"]["transformer"] and used["steps"]["transformer_2"]  # both experts ran


def test_guidance_2_and_boundary_change_the_output(two_dir, job_dir, tmp_path, capsys):
    runs = {}
    for name, extra in [("plain", []), ("g2", ["--guidance-2", 1.0]), ("b", ["--boundary", 0.6])]:
        assert cli_run(capsys, two_dir, job_dir, tmp_path / name, *extra)[0] == 0
        runs[name] = load_result(tmp_path / name).video
    assert not np.array_equal(runs["plain"], runs["g2"]) and not np.array_equal(runs["plain"], runs["b"])


# ------------------------------------------------------------------------------ features on both experts
def zero_control_from(pipe, names, step):
    """Test-side hooks: control scale zero on the named experts from ``step`` on (diffusers' own loop)."""

    def pre_hook(module, args, kwargs):
        if (pipe.scheduler.step_index or 0) >= step:
            return args, {**kwargs, "control_hidden_states_scale": kwargs["control_hidden_states_scale"] * 0}
        return None

    return [getattr(pipe, n).register_forward_pre_hook(pre_hook, with_kwargs=True) for n in names]


def test_vace_end_applies_to_both_experts(two_dir, job_dir, tmp_path, capsys):
    assert cli_run(capsys, two_dir, job_dir, tmp_path / "plain")[0] == 0
    assert cli_run(capsys, two_dir, job_dir, tmp_path / "cut", "--vace-end", 0.5)[0] == 0
    plain, cut = (load_result(tmp_path / n).video for n in ("plain", "cut"))
    assert not np.array_equal(plain, cut)  # the low-noise steps lost their control: the output changed

    from diffusers import WanVACEPipeline

    pipe = WanVACEPipeline.from_pretrained(str(two_dir))
    pipe.set_progress_bar_config(disable=True)

    def with_hooks(names):
        handles = zero_control_from(pipe, names, STEPS // 2)
        try:
            inputs = diffusers_inputs(make_job(), steps=STEPS)
            frames = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, **inputs).frames[0]
        finally:
            for handle in handles:
                handle.remove()
        return (frames * 255).round().astype(np.uint8)

    both = with_hooks(["transformer", "transformer_2"])
    assert np.abs(cut.astype(int) - both.astype(int)).max() <= 1
    # a hook on the first expert only, as before: steps 2-3 run on transformer_2, nothing changes
    assert np.abs(with_hooks(["transformer"]).astype(int) - plain.astype(int)).max() <= 1


def test_conditioning_scale_and_aligned_masks_reach_both_experts(two_dir, job_dir, tmp_path):
    loaded = load_pipeline(RunSettings(model=str(two_dir)))
    seen = {"transformer": [], "transformer_2": []}

    def spy(name):
        def pre_hook(module, args, kwargs):
            seen[name].append(
                (kwargs["control_hidden_states_scale"][0].item(), kwargs["control_hidden_states"])
            )

        return pre_hook

    handles = [getattr(loaded.pipe, n).register_forward_pre_hook(spy(n), with_kwargs=True) for n in seen]
    try:
        settings = RunSettings(prompt=PROMPT, steps=STEPS, conditioning_scale=0.5, mask_encoding="aligned")
        run_job(job_dir, tmp_path / "res", settings, pipeline=loaded)
    finally:
        for handle in handles:
            handle.remove()
    from vacelab.geometry import mask_latent

    aligned = torch.from_numpy(mask_latent(make_job().mask, 0, "aligned"))
    for name, calls in seen.items():
        assert len(calls) == 2 * 2 and all(scale == 0.5 for scale, _ in calls), name  # 2 steps, cond + uncond
        assert all(torch.equal(control[0, 32:], aligned) for _, control in calls), name


def expert_outputs(pipe) -> dict[str, torch.Tensor]:
    """Each expert's output on fixed inputs (what its weights, LoRAs included, compute)."""
    gen = torch.Generator().manual_seed(0)
    inputs = dict(
        hidden_states=torch.randn(1, 16, 2, 4, 4, generator=gen),
        control_hidden_states=torch.randn(1, 96, 2, 4, 4, generator=gen),
        encoder_hidden_states=torch.randn(1, 8, 32, generator=gen),
        timestep=torch.tensor([500.0]),
        return_dict=False,
    )
    with torch.no_grad():
        return {n: getattr(pipe, n)(**inputs)[0] for n in ("transformer", "transformer_2")}


def test_loras_go_into_the_experts_they_name(two_dir, loras, job_dir, tmp_path):
    base = expert_outputs(load_pipeline(RunSettings(model=str(two_dir))).pipe)

    def changed(**kw):
        loaded = load_pipeline(RunSettings(model=str(two_dir), **kw))
        out = expert_outputs(loaded.pipe)
        return {n: not torch.allclose(out[n], base[n], atol=1e-6) for n in out}, loaded

    low, loaded = changed(lora_low=[str(loras[0])])
    assert low == {"transformer": False, "transformer_2": True}  # only transformer_2's weights
    assert changed(lora_high=[str(loras[0])])[0] == {"transformer": True, "transformer_2": False}
    both, _ = changed(lora=[str(loras[0])])
    assert both == {"transformer": True, "transformer_2": True}
    # run.json names each expert's LoRAs
    mixed = RunSettings(prompt=PROMPT, steps=1, model=str(two_dir), lora=[f"{loras[0]}:0.5"])
    mixed.lora_low = [str(loras[1])]
    used = run_job(job_dir, tmp_path / "res", mixed, pipeline=load_pipeline(mixed)).run["used"]
    assert used["experts"]["loras"] == {
        "transformer": [{"file": str(loras[0]), "scale": 0.5}],
        "transformer_2": [{"file": str(loras[0]), "scale": 0.5}, {"file": str(loras[1]), "scale": 1.0}],
    }
    assert [a["experts"] for a in used["loras"]] == [["transformer", "transformer_2"], ["transformer_2"]]


def test_attention_and_the_fast_profile_cover_both_experts(two_dir):
    def backends(module):
        return {
            str(getattr(m.processor, "_attention_backend", None))
            for m in module.modules()
            if hasattr(m, "processor")
        }

    loaded = load_pipeline(RunSettings(model=str(two_dir), attention="_native_math"))
    assert loaded.experts == ("transformer", "transformer_2")
    for name in loaded.experts:
        assert backends(getattr(loaded.pipe, name)) == {"AttentionBackendName._NATIVE_MATH"}, name
    fast = load_pipeline(RunSettings(model=str(two_dir), fast=True))
    assert set(fast.profile) == {"transformer", "transformer_2"}
    assert fast.profile["transformer"]["attention"] == fast.profile["transformer_2"]["attention"]


def test_model_offload_keeps_one_expert_at_a_time(two_dir, monkeypatch):
    """diffusers' offload order moves ``transformer`` out when ``transformer_2`` comes in, and
    ``transformer_2`` out when the VAE decodes: never both experts on the accelerator."""
    import vacelab.generation.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "placement_device", lambda settings: "cpu")  # offload on CPU
    loaded = load_pipeline(RunSettings(model=str(two_dir), offload="model"))
    pipe = loaded.pipe
    chain = [pipe.transformer_2._hf_hook.prev_module_hook.model, pipe.vae._hf_hook.prev_module_hook.model]
    assert chain == [pipe.transformer, pipe.transformer_2]


def test_a_long_job_runs_every_window_on_both_experts(two_dir, tmp_path):
    from vacelab.geometry import plan_windows

    job = make_job(frames=17)
    job.windows = plan_windows(17, 9, 5)
    settings = RunSettings(prompt=PROMPT, steps=STEPS, model=str(two_dir), vace_end=0.5)
    result = run_job(job, tmp_path / "long", settings)
    assert len(result.run["windows"]) == len(job.windows) > 1 and result.video.shape[0] == 17
    assert result.run["used"]["experts"]["steps"] == {"transformer": [0, 1], "transformer_2": [2, 3]}


# ------------------------------------------------------------------------------------------- refusals
def test_two_expert_options_are_refused_for_one_expert(
    tiny_model_dir, two_dir, job_dir, loras, tmp_path, capsys
):
    cases = [
        (tiny_model_dir, ["--guidance-2", 3], "error: --guidance-2 3.0: needs a two-expert model"),
        (tiny_model_dir, ["--lora-low", loras[0]], f"error: --lora-low {loras[0]}: needs a two-expert model"),
        (tiny_model_dir, ["--boundary", 0.5], "error: --boundary 0.5: needs a two-expert model"),
        (two_dir, ["--boundary", 1.5], "error: --boundary 1.5: must be between 0 and 1"),
    ]
    for i, (model, extra, message) in enumerate(cases):
        out = tmp_path / f"res{i}"
        code, err = cli_run(capsys, model, job_dir, out, *extra)
        assert code == 2 and err.startswith(message) and err.count("\n") == 1, err  # before the audit
        assert not out.exists()


def test_a_model_with_another_vae_geometry_is_refused(job_dir, tmp_path, capsys):
    from vacelab.testing.tiny import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    pipe.vae.register_to_config(temperal_downsample=[False, False, True])  # 2 frames per latent step
    pipe.save_pretrained(tmp_path / "odd")
    capsys.readouterr()  # save_pretrained's own bar
    code, err = cli_run(capsys, tmp_path / "odd", job_dir, tmp_path / "res")
    assert code == 2 and err.count("\n") == 1 and "its VAE encodes 2 frames" in err, err
    assert err.startswith(f"error: --model {tmp_path / 'odd'}:") and not (tmp_path / "res").exists()


def test_memory_estimate_counts_both_experts(two_dir):
    from vacelab.generation.memory import estimate_memory, model_size
    from vacelab.generation.settings import MODEL_ALIASES
    from vacelab.geometry import Geometry

    tiny = model_size(str(two_dir))
    assert tiny["transformer_2"] == tiny["transformer"] > 0
    geometry = Geometry(frames=81, height=480, width=832)
    one = estimate_memory(MODEL_ALIASES["14b"], geometry, dtype_bytes=2, vae_tiling=False)
    two = estimate_memory(MODEL_ALIASES["2.2-a14b"], geometry, dtype_bytes=2, vae_tiling=False)
    expert = two.weights["transformer_2"]
    assert round(expert / 1024**3) == 31  # 16.9 B parameters in bf16
    assert two.per_mode["none"] == one.per_mode["none"] + expert  # every weight resident
    assert two.per_mode["model"] == one.per_mode["model"]  # one expert at a time
    assert two.per_mode["group"] == one.per_mode["group"]


def test_manifests_and_plans_take_the_new_keys(two_dir, loras, tmp_path):
    from vacelab.errors import InputError
    from vacelab.manifest import check_settings

    local = tmp_path / "low.safetensors"
    local.write_bytes(loras[1].read_bytes())
    table = {"model": str(two_dir), "guidance_2": 3, "boundary": 0.6, "lora_low": "low.safetensors"}
    checked = check_settings(table, "m.toml: [defaults]", base=tmp_path)
    assert checked["guidance_2"] == 3.0 and checked["lora_low"] == [str(local.resolve())]
    with pytest.raises(InputError, match=r"lora_high = 'missing.safetensors': no such file"):
        check_settings({"lora_high": "missing.safetensors"}, "m.toml: [defaults]", base=tmp_path)
    from vacelab.manifest import validate_settings

    with pytest.raises(InputError, match=r"\[\[jobs\]\] 'a': boundary = 1.5: must be between 0 and 1"):
        validate_settings(RunSettings(boundary=1.5), "m.toml: [[jobs]] 'a'")
    assert json.loads(json.dumps(RunSettings(guidance_2=2.0).as_dict()))["guidance_2"] == 2.0
