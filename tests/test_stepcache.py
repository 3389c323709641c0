"""``--cache R``: the VACE-correct step cache (generation/stepcache.py) on the tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_job

from vacelab import RunSettings
from vacelab.generation.pipeline import load_pipeline
from vacelab.generation.run import run_job
from vacelab.generation.stepcache import step_cache

STEPS = 6
FRAMES = 5  # 2 latent frames: cheap


@pytest.fixture(scope="module")
def pipe(tiny_model_dir):
    return load_pipeline(RunSettings(model=str(tiny_model_dir))).pipe


@pytest.fixture(scope="module")
def plain(pipe, tmp_path_factory):
    """The uncached run's frames."""
    return run_job(
        make_job(FRAMES), tmp_path_factory.mktemp("plain") / "res", settings(), pipeline=pipe
    ).video


def settings(**kw) -> RunSettings:
    return RunSettings(**{"prompt": "an empty street", "steps": STEPS, "composite": False, **kw})


def transformer_inputs(transformer, scale: float = 1.0) -> dict:
    config = transformer.config
    gen = torch.Generator().manual_seed(0)
    return dict(
        hidden_states=torch.randn(1, config.in_channels, 3, 6, 10, generator=gen),
        timestep=torch.tensor([500]),
        encoder_hidden_states=torch.randn(1, 7, config.text_dim, generator=gen),
        control_hidden_states=torch.randn(1, config.vace_in_channels, 3, 6, 10, generator=gen),
        control_hidden_states_scale=torch.full((len(config.vace_layers),), scale),
        return_dict=False,
    )


def test_a_cached_step_adds_the_hints_once(pipe):
    """Identical inputs twice: the second call is skipped, runs no VACE block and no DiT block, and gives
    the first call's output (diffusers' FirstBlockCache, which hooks only ``blocks.*``, adds the hints a
    second time on top of the cached residual: docs/performance.md)."""
    transformer = pipe.transformer
    calls = {"vace": 0, "dit": 0}
    counters = [
        b.register_forward_hook(lambda *a: calls.__setitem__("vace", calls["vace"] + 1))
        for b in transformer.vace_blocks
    ]
    counters += [
        b.register_forward_hook(lambda *a: calls.__setitem__("dit", calls["dit"] + 1))
        for b in transformer.blocks
    ]
    step = [0]
    try:
        with torch.no_grad():
            reference = transformer(**transformer_inputs(transformer))[0]
            twice = transformer(**transformer_inputs(transformer, scale=2.0))[0]
            assert not torch.allclose(reference, twice, atol=1e-3)  # hints added twice would show
            calls.update(vace=0, dit=0)
            with step_cache([("transformer", transformer)], 1.0, 10, lambda: step[0]) as cache:
                first = transformer(**transformer_inputs(transformer))[0]
                assert calls == {"vace": 2, "dit": 3}
                step[0] = 1
                second = transformer(**transformer_inputs(transformer))[0]
                assert calls == {"vace": 2, "dit": 3}  # nothing ran: the hints were not computed again
                step[0] = 2  # the VACE scale changed (--vace-end): computed
                third = transformer(**transformer_inputs(transformer, scale=0.0))[0]
                assert calls == {"vace": 4, "dit": 6}
                step[0] = 3  # no scale given (diffusers' default ones) after a given one: computed, then kept
                unscaled = {**transformer_inputs(transformer), "control_hidden_states_scale": None}
                transformer(**unscaled)
                step[0] = 4
                transformer(**unscaled)
                assert calls == {"vace": 6, "dit": 9}
    finally:
        for handle in counters:
            handle.remove()
    assert torch.equal(first, reference)
    torch.testing.assert_close(second, first, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(third, first, atol=1e-3)
    assert cache.record()["skipped"] == [1, 4]
    assert type(transformer.blocks[0]).__name__ == "WanTransformerBlock"  # put back


def test_cache_zero_is_the_plain_call(pipe, plain, tmp_path):
    off = run_job(make_job(FRAMES), tmp_path / "b", settings(cache=0.0), pipeline=pipe)
    assert np.array_equal(plain, off.video) and off.run["used"]["cache"] is None


def test_gates_that_skip_nothing_change_nothing(pipe, plain, tmp_path):
    tight = run_job(make_job(FRAMES), tmp_path / "b", settings(cache=1e-12), pipeline=pipe)
    assert tight.run["used"]["cache"]["skipped"] == []
    assert np.array_equal(plain, tight.video)


def test_a_loose_cache_skips_steps_and_keeps_the_vace_control(pipe, plain, tmp_path):
    loose = run_job(make_job(FRAMES), tmp_path / "b", settings(cache=100.0), pipeline=pipe)
    used = loose.run["used"]["cache"]
    assert used["skipped"] == [1, 2, 3, 4] and used["computed"] == 2  # first and last step computed
    assert used["threshold"] == 100.0 and len(used["changes"]) == STEPS - 1
    assert not np.array_equal(plain, loose.video)
    no_control = run_job(
        make_job(FRAMES), tmp_path / "c", settings(cache=100.0, conditioning_scale=0.0), pipeline=pipe
    )
    assert no_control.run["used"]["cache"]["skipped"] == [1, 2, 3, 4]
    assert not np.array_equal(no_control.video, loose.video)
    assert type(pipe.transformer.vace_blocks[0]).__name__ == "WanVACETransformerBlock"


def test_two_experts_keep_their_own_cache(tmp_path):
    from vacelab import place_pipeline
    from vacelab.testing.tiny import build_tiny_pipeline

    loaded = place_pipeline(build_tiny_pipeline(experts=2, boundary_ratio=0.5), settings())
    result = run_job(make_job(FRAMES), tmp_path / "a", settings(cache=100.0), pipeline=loaded)
    used = result.run["used"]["cache"]
    steps = result.run["used"]["experts"]["steps"]
    first_low = steps["transformer_2"][0]
    assert first_low not in used["skipped"] and 0 not in used["skipped"]  # each expert starts computed
    assert set(used["experts"]) == {"transformer", "transformer_2"} and used["skipped"]


def test_a_bad_threshold_is_refused():
    from vacelab import InputError

    with pytest.raises(InputError, match="finite number >= 0"):
        RunSettings(cache=-1.0).validate()
