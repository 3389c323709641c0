"""Helpers shared by several test modules (test modules never import each other)."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vacelab.job import Job

F, H, W = 9, 96, 160  # small: 3 latent steps, 6 x 10 latents


def make_job(frames=F, refs=(), negative="gun, weapon") -> Job:
    """An inpaint job of ``frames`` frames at H x W: a gradient clip, a box mask, frames 1-3 all GENERATE."""
    x = np.linspace(0, 255, W, dtype=np.float32)
    y = np.linspace(0, 255, H, dtype=np.float32)
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    source = np.stack(
        [
            np.broadcast_to(x[None, None, :] + 0 * t, (frames, H, W)),
            np.broadcast_to(y[None, :, None] + 0 * t, (frames, H, W)),
            np.broadcast_to(8 * t, (frames, H, W)),
        ],
        -1,
    ).astype(np.uint8)
    mask = np.zeros((frames, H, W), bool)
    mask[:, 32:64, 48:112] = True
    mask[1:4] = True  # frames 1-3 fully GENERATE: the reference and aligned mask encodings differ
    video = source.copy()
    video[mask] = 127
    return Job(
        task="inpaint",
        video=video,
        mask=mask,
        fps=16.0,
        refs=list(refs),
        original=source,
        negative_prompt=negative,
    )


def run_tiny(pipe, seed: int = 3) -> np.ndarray:
    """Two denoising steps of the tiny pipeline on a fixed 9x32x48 clip with a box mask."""
    import torch
    from PIL import Image

    rng = np.random.default_rng(0)
    video = [Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)) for _ in range(9)]
    box = np.zeros((32, 48), np.uint8)
    box[8:24, 16:40] = 255
    mask = [Image.fromarray(box, "L")] * 9
    out = pipe(
        video=video,
        mask=mask,
        prompt="a red car",
        negative_prompt="gray",
        height=32,
        width=48,
        num_frames=9,
        num_inference_steps=2,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return out.frames[0]


def prepare_masks(pipe, mask: np.ndarray, ref_frames: int) -> np.ndarray:
    """diffusers' mask tensor for a bool mask [F, H, W], as ``__call__`` builds it.

    ``__call__`` passes the mask as a float [1, 3, F, H, W] tensor in [0, 1] and the preprocessed
    reference list ``[[ref, ...]]`` (``[[]]`` without references; only its length matters here).
    """
    import torch

    tensor = torch.from_numpy(mask.astype(np.float32))[None, None].expand(1, 3, *mask.shape).contiguous()
    refs = [[torch.zeros(3, *mask.shape[1:]) for _ in range(ref_frames)]]
    with torch.no_grad():
        return pipe.prepare_masks(tensor, refs)[0].numpy()


def diffusers_inputs(job: Job, seed=2025, steps=2):
    """What a careful user would hand WanVACEPipeline directly (built here without vacelab's helpers)."""
    import torch
    from PIL import Image

    return dict(
        video=[Image.fromarray(f) for f in job.video],
        mask=[Image.fromarray(np.where(m, 255, 0).astype(np.uint8), "L") for m in job.mask],
        height=H,
        width=W,
        num_frames=job.video.shape[0],
        num_inference_steps=steps,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
    )


def make_lora(folder: Path, seed: int, targets=("to_q", "to_k", "to_v", "to_out.0")) -> Path:
    """A peft LoRA with random A and B on a tiny transformer (untrained), saved as diffusers saves one."""
    import torch
    from diffusers import WanVACEPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from vacelab.testing.tiny import build_tiny_pipeline

    transformer = build_tiny_pipeline(seed=seed).transformer
    torch.manual_seed(seed)
    transformer.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=list(targets), init_lora_weights=False)
    )
    WanVACEPipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return folder / "pytorch_lora_weights.safetensors"


@contextlib.contextmanager
def mounted_tmpfs(path: Path, *, size: str = "256k", read_only: bool = False):
    """Fault injection: a small (or read-only) tmpfs mounted at ``path`` for the block. Skips the test,
    with the reason, where this machine does not allow mounting (not root, no CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip() or mounted.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def cli_env(tmp_path: Path, **extra: str) -> dict:
    """The environment of a ``python -m vacelab`` subprocess without network and without
    ``HF_HUB_OFFLINE``: an empty Hugging Face cache in ``tmp_path``, the hub at a local port nobody
    listens on (refused at once: deterministic), and this source tree on ``PYTHONPATH``."""
    import os

    import vacelab

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "PYTHONPATH": str(Path(vacelab.__file__).parents[1]),
    }
    env.update(extra)
    return env
