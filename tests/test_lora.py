"""``--lora FILE[:SCALE]`` through diffusers' LoRA loading, with a tiny LoRA made for the tiny pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_job, make_lora, run_tiny

from vacelab.errors import InputError
from vacelab.generation.lora import LoraSpec, apply_loras, parse_lora_spec
from vacelab.testing.tiny import build_tiny_pipeline


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    return [make_lora(root / f"l{i}", seed=10 + i) for i in range(2)]


@pytest.fixture(scope="module")
def base_output():
    return run_tiny(build_tiny_pipeline())


def test_parse_lora_spec(loras, tmp_path):
    assert parse_lora_spec(str(loras[0])) == LoraSpec(loras[0], 1.0)
    assert parse_lora_spec(f"{loras[0]}:0.5") == LoraSpec(loras[0], 0.5)
    assert parse_lora_spec(f"{loras[0]}:-1e-1") == LoraSpec(loras[0], -0.1)
    odd = tmp_path / "style:v2.safetensors"  # a colon in the file name, no scale
    odd.write_bytes(loras[0].read_bytes())
    assert parse_lora_spec(str(odd)) == LoraSpec(odd, 1.0)
    assert parse_lora_spec(f"{odd}:2") == LoraSpec(odd, 2.0)
    with pytest.raises(InputError, match="no such file"):
        parse_lora_spec(str(tmp_path / "missing.safetensors"))
    with pytest.raises(InputError, match="no such file"):
        parse_lora_spec(f"{tmp_path / 'missing.safetensors'}:0.5")
    with pytest.raises(InputError, match="finite"):
        parse_lora_spec(f"{loras[0]}:nan")
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(loras[0].read_bytes()[:100])
    with pytest.raises(InputError, match=r"truncated\.safetensors: not a readable \.safetensors file"):
        parse_lora_spec(str(truncated))
    garbage = tmp_path / "garbage.pt"  # refused by reading it, before any model loads
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=r"garbage\.pt: not a readable \.safetensors or torch file"):
        parse_lora_spec(str(garbage))
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(InputError, match=r"list\.pt: holds a list, not a dict of LoRA weights"):
        parse_lora_spec(str(tmp_path / "list.pt"))
    torch.save({"blocks.0.attn1.to_q.weight": torch.zeros(2, 2)}, tmp_path / "plain.pt")
    with pytest.raises(InputError, match=r"plain\.pt: no LoRA weights in this file"):
        parse_lora_spec(str(tmp_path / "plain.pt"))


@pytest.fixture(scope="module")
def first_output(loras):
    """The tiny pipeline's output with the first LoRA at scale 1."""
    pipe = build_tiny_pipeline()
    applied = apply_loras(pipe, [f"{loras[0]}:1.0"])
    assert applied == [{"file": str(loras[0]), "scale": 1.0, "adapter": "lora0", "experts": ["transformer"]}]
    return run_tiny(pipe)


def test_lora_changes_the_output_and_scale_zero_does_not(loras, base_output, first_output):
    assert np.abs(first_output - base_output).max() > 1e-2
    pipe = build_tiny_pipeline()
    apply_loras(pipe, [f"{loras[0]}:0"])
    np.testing.assert_allclose(run_tiny(pipe), base_output, atol=1e-5)


def test_a_torch_checkpoint_lora_loads_like_its_safetensors_twin(loras, first_output, tmp_path):
    from safetensors.torch import load_file

    pickled = tmp_path / "lora.pt"
    torch.save(load_file(str(loras[0])), pickled)
    pipe = build_tiny_pipeline()
    apply_loras(pipe, [str(pickled)])
    np.testing.assert_allclose(run_tiny(pipe), first_output, atol=1e-5)


def test_two_loras_with_their_own_scales(loras, first_output):
    pipe = build_tiny_pipeline()
    apply_loras(pipe, [str(loras[0]), LoraSpec(loras[1], 0.0)])
    np.testing.assert_allclose(run_tiny(pipe), first_output, atol=1e-5)  # the second at scale 0 adds nothing

    pipe = build_tiny_pipeline()
    applied = apply_loras(pipe, [str(loras[0]), f"{loras[1]}:0.7"])
    assert [a["adapter"] for a in applied] == ["lora0", "lora1"]
    assert np.abs(run_tiny(pipe) - first_output).max() > 1e-3


def test_bad_files_are_input_errors(tmp_path, loras):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(InputError, match="garbage.safetensors"):
        apply_loras(build_tiny_pipeline(), [str(garbage)])

    from safetensors.torch import save_file

    not_lora = tmp_path / "weights.safetensors"
    save_file({"transformer.blocks.0.attn1.to_q.weight": torch.zeros(24, 24)}, str(not_lora))
    with pytest.raises(InputError, match="weights.safetensors"):
        apply_loras(build_tiny_pipeline(), [str(not_lora)])

    # a LoRA made for another model size: its matrices do not fit this transformer
    from diffusers import WanVACEPipeline

    other = tmp_path / "other"
    WanVACEPipeline.save_lora_weights(
        other,
        transformer_lora_layers={
            "blocks.0.attn1.to_q.lora_A.weight": torch.randn(4, 48),
            "blocks.0.attn1.to_q.lora_B.weight": torch.randn(48, 4),
        },
    )
    with pytest.raises(InputError, match="pytorch_lora_weights.safetensors"):
        apply_loras(build_tiny_pipeline(), [str(other / "pytorch_lora_weights.safetensors")])


def test_run_json_records_the_loras_and_the_fast_profile(loras, tiny_model_dir, tmp_path):
    """run.json says what was applied, not only what was asked: adapters with their scales, and what the
    fast profile set (on CPU: no compile, the attention backend its probe picked)."""
    import json

    from vacelab import RunSettings, load_pipeline, run_job

    settings = RunSettings(
        prompt="a red car", steps=1, model=str(tiny_model_dir), lora=[f"{loras[0]}:0.5"], fast=True
    )
    result = run_job(make_job(), tmp_path / "res", settings, pipeline=load_pipeline(settings))
    used = json.loads((tmp_path / "res" / "run.json").read_text())["used"]
    assert used == result.run["used"]
    assert used["loras"] == [
        {"file": str(loras[0]), "scale": 0.5, "adapter": "lora0", "experts": ["transformer"]}
    ]
    profile = used["fast_profile"]
    assert profile["device"] == "cpu" and profile["compile"] is None and profile["guidance_batching"] is False
    assert isinstance(profile["attention"], str) and profile["attention"]

    plain = RunSettings(prompt="a red car", steps=1, model=str(tiny_model_dir))
    used = run_job(make_job(), tmp_path / "plain", plain, pipeline=load_pipeline(plain)).run["used"]
    assert used["loras"] == [] and used["fast_profile"] is None
