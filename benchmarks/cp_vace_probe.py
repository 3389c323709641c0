"""Probe: one VACE transformer forward split across processes (Ulysses sequence parallel) in diffusers.

diffusers 0.42.1 ships a context-parallel plan (``_cp_plan``) for ``WanTransformer3DModel`` but none for
``WanVACETransformer3DModel``, and Wan's plan does not fit VACE (the VACE blocks see the unsplit
sequence: a size mismatch). This probe hands ``enable_parallelism`` vacelab's plan
(``vacelab.generation.parallel.vace_cp_plan``, what ``vacelab run --parallel N`` uses), which also splits
the inputs of the first VACE block, and compares every rank's output with a one-process forward of the
same tiny random model. See docs/performance.md ("One job over several GPUs").

Run on CPU (gloo):   CUDA_VISIBLE_DEVICES= torchrun --nproc-per-node 2 benchmarks/cp_vace_probe.py
Prints per rank the tokens each attention layer saw and max |difference| to the one-process output.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from diffusers.models._modeling_parallel import ContextParallelConfig

from vacelab.generation.parallel import vace_cp_plan
from vacelab.testing.tiny import build_tiny_pipeline


def inputs() -> dict:
    """One reference step + 17 frames (5 latent steps) at 64x64: 6 x 4 x 4 = 96 tokens."""
    g = torch.Generator().manual_seed(0)
    return {
        "hidden_states": torch.randn(1, 16, 6, 8, 8, generator=g),
        "timestep": torch.tensor([500]),
        "encoder_hidden_states": torch.randn(1, 12, 32, generator=g),
        "control_hidden_states": torch.randn(1, 96, 6, 8, 8, generator=g),
        "control_hidden_states_scale": torch.ones(2),
        "return_dict": False,
    }


def main() -> None:
    if torch.cuda.is_available():
        raise SystemExit("a CPU probe: run it with CUDA_VISIBLE_DEVICES= (see the docstring)")
    torch.accelerator.device_count = lambda: 1  # diffusers picks the device as rank % accelerator count
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = build_tiny_pipeline().transformer.eval()
    with torch.no_grad():
        reference = model(**inputs())[0]
    model.enable_parallelism(config=ContextParallelConfig(ulysses_degree=world), cp_plan=vace_cp_plan())
    seen = {}
    for name in ("vace_blocks.0.attn1", "vace_blocks.1.attn1", "blocks.0.attn1", "blocks.2.attn1"):
        model.get_submodule(name).register_forward_pre_hook(
            lambda m, args, kwargs, name=name: seen.__setitem__(name, args[0].shape[1]), with_kwargs=True
        )
    with torch.no_grad():
        output = model(**inputs())[0]
    diff = (output - reference).abs().max().item()
    print(f"rank {rank}/{world}: tokens per attention {seen} of 96; max |diff| to one process {diff:.3g}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
