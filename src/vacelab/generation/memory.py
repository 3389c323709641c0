"""A rough accelerator-memory estimate for one run, so a run that cannot fit is stopped before loading.

Weights are counted exactly where the model files can be read (a local folder or the Hugging Face cache:
the parameter shapes in each ``*.safetensors`` header, no tensor is loaded); for an uncached hub id the
known sizes of the public checkpoints are used. Activations are estimated from the DiT sequence length
(``Geometry.tokens``), the model width and the number of VACE hint tensors the transformer keeps, plus
a VAE decode workspace. What each offload mode keeps resident:

- ``none``: all weights (text encoder, the transformer - both experts of a two-expert model - and the
  VAE) + activations;
- ``model``: one component at a time (the largest: the UMT5 text encoder, or one 14B expert; diffusers'
  offload order moves ``transformer`` out before ``transformer_2`` comes in) + activations;
- ``group``: two transformer blocks (one runs, the next is prefetched) + activations; ``sequential``:
  activations only.

It is an estimate (documented in ``docs/run.md``): vacelab warns when it exceeds the free memory and
refuses only when the resident weights alone cannot fit.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

from ..geometry import Geometry

GIB = 1024**3
# Parameter counts of the public diffusers checkpoints (used when their files are not available locally):
# transformer from the 7.2 GB fp32 1.3B checkpoint / the 14B architecture with its 8 VACE blocks,
# UMT5-XXL encoder 5.7 B (11.4 GB in bf16), Wan VAE 0.127 B.
KNOWN_MODELS = {
    "Wan-AI/Wan2.1-VACE-1.3B-diffusers": {
        "transformer": 1.8e9,
        "text_encoder": 5.7e9,
        "vae": 0.127e9,
        "dim": 1536,
        "blocks": 30,
        "vace_blocks": 15,
    },
    "Wan-AI/Wan2.1-VACE-14B-diffusers": {
        "transformer": 16.9e9,
        "text_encoder": 5.7e9,
        "vae": 0.127e9,
        "dim": 5120,
        "blocks": 40,
        "vace_blocks": 8,
    },
    # Wan2.2 VACE-Fun A14B: two experts of the 14B VACE architecture (VACE blocks every 5th layer), the
    # same UMT5 encoder and Wan2.1 VAE (64 GB in bf16 as published)
    "linoyts/Wan2.2-VACE-Fun-14B-diffusers": {
        "transformer": 16.9e9,
        "transformer_2": 16.9e9,
        "text_encoder": 5.7e9,
        "vae": 0.127e9,
        "dim": 5120,
        "blocks": 40,
        "vace_blocks": 8,
    },
}
COMPONENTS = ("transformer", "text_encoder", "vae")
EXPERT_2 = "transformer_2"  # the second expert of a two-expert model, counted when its folder exists
ACTIVATION_COPIES = (
    12  # live [tokens, dim] tensors in one block: qkv, attention out, FFN (x ffn/dim), residual
)


@dataclass
class MemoryEstimate:
    """Bytes needed on the accelerator, per offload mode."""

    weights: dict[str, int]
    activations: int
    vae_workspace: int
    per_mode: dict[str, int]
    resident: dict[str, int]  # weights alone, per mode (a run whose resident weights do not fit cannot work)

    def as_dict(self) -> dict:
        return {
            "weights_gib": {k: round(v / GIB, 2) for k, v in self.weights.items()},
            "activations_gib": round(self.activations / GIB, 2),
            "vae_workspace_gib": round(self.vae_workspace / GIB, 2),
            "per_mode_gib": {k: round(v / GIB, 2) for k, v in self.per_mode.items()},
        }


def _safetensors_params(folder: Path) -> int | None:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with open(file, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for name, entry in header.items():
            if name != "__metadata__":
                count = 1
                for dim in entry["shape"]:
                    count *= dim
                total += count
    return total


def model_folder(model: str) -> Path | None:
    """The local folder of ``model``: itself when a folder, else its Hugging Face cache snapshot, if any."""
    if Path(model).is_dir():
        return Path(model)
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "model_index.json")
    except Exception:  # not a valid hub id: the loader reports it
        return None
    return Path(found).parent if isinstance(found, str) else None


def model_size(model: str) -> dict | None:
    """Parameter counts per component and transformer shape, from the files when available."""
    folder = model_folder(model)
    if folder is not None:
        info = {name: _safetensors_params(folder / name) for name in COMPONENTS}
        if (folder / EXPERT_2).is_dir():
            info[EXPERT_2] = _safetensors_params(folder / EXPERT_2)
        config_path = folder / "transformer" / "config.json"
        if None not in info.values() and config_path.is_file():
            config = json.loads(config_path.read_text())
            info.update(
                dim=config["num_attention_heads"] * config["attention_head_dim"],
                blocks=config["num_layers"],
                vace_blocks=len(config.get("vace_layers", [])),
            )
            return info
    return KNOWN_MODELS.get(model)


def estimate_memory(
    model: str, geometry: Geometry, *, dtype_bytes: int, vae_tiling: bool
) -> MemoryEstimate | None:
    """Accelerator memory per offload mode for ``model`` at ``geometry`` (``None``: unknown model)."""
    info = model_size(model)
    if info is None:
        return None
    weights = {
        "transformer": int(info["transformer"] * dtype_bytes),
        "text_encoder": int(info["text_encoder"] * dtype_bytes),
        "vae": int(info["vae"] * 4),  # kept fp32
    }
    if EXPERT_2 in info:
        weights[EXPERT_2] = int(info[EXPERT_2] * dtype_bytes)
    # The VACE hints (one [tokens, dim] tensor per VACE block) live through the whole forward pass.
    activations = int(geometry.tokens * info["dim"] * dtype_bytes * (ACTIVATION_COPIES + info["vace_blocks"]))
    # Wan VAE decode: 96-384 channels at full resolution over a few cached frames; tiling bounds it.
    pixels = geometry.height * geometry.width
    vae_workspace = int(min(pixels, 256 * 256) if vae_tiling else pixels) * 4 * 384 * 4
    block = weights["transformer"] // max(1, info["blocks"] + info["vace_blocks"])
    return MemoryEstimate(
        weights=weights,
        activations=activations,
        vae_workspace=vae_workspace,
        per_mode=_per_mode(weights, block, activations, vae_workspace),
        resident=_per_mode(weights, block, 0, 0),
    )


def _per_mode(weights: dict[str, int], block: int, activations: int, vae_workspace: int) -> dict[str, int]:
    compute = max(activations, vae_workspace)
    expert = max(weights["transformer"], weights.get(EXPERT_2, 0))  # model offload: one expert at a time
    return {
        "none": sum(weights.values()) + compute,
        "model": max(weights["text_encoder"], expert + activations, weights["vae"] + vae_workspace),
        "group": 2 * block + weights["vae"] + compute,  # the running block and the one being prefetched
        "sequential": compute,
    }


def suggest_offload(estimate: MemoryEstimate, free_bytes: int) -> str | None:
    """The lightest offload mode whose estimate fits in ``free_bytes`` (``None`` if none does)."""
    for mode in ("none", "model", "group", "sequential"):
        if estimate.per_mode[mode] <= free_bytes:
            return mode
    return None
