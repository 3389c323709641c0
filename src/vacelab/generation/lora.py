"""LoRA adapters for ``vacelab run --lora FILE[:SCALE]`` (repeatable), loaded through diffusers' LoRA loading.

Any Wan2.1 LoRA that ``WanVACEPipeline.load_lora_weights`` reads works: diffusers/peft format
(``transformer.blocks.N.attn1.to_q.lora_A.weight``), the original Wan format (``diffusion_model.*``) and
musubi-tuner's (``lora_unet_*``), which diffusers converts: step-distillation LoRAs (4-8 steps) and style
LoRAs alike. A distillation LoRA changes the output and needs its own steps/guidance (lossy: see
docs/performance.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from vacelab.errors import InputError


@dataclass(frozen=True)
class LoraSpec:
    path: Path
    scale: float = 1.0


def split_lora_spec(spec: str) -> tuple[str, str | None]:
    """``"FILE[:SCALE]"`` -> ``(FILE, SCALE or None)``; a ``:`` not followed by a number is in FILE."""
    head, sep, tail = spec.rpartition(":")
    if sep and head:
        try:
            float(tail)
        except ValueError:
            return spec, None  # e.g. "C:\\loras\\x.safetensors" or a file name with a colon
        return head, tail
    return spec, None


def parse_lora_spec(spec: str) -> LoraSpec:
    """``"FILE[:SCALE]"`` -> ``LoraSpec``; FILE must exist and hold LoRA weights (.safetensors or a torch
    checkpoint, read before any model loads); a ``:`` not followed by a number is in FILE."""
    path, text = split_lora_spec(spec)
    scale = 1.0 if text is None else float(text)
    if not math.isfinite(scale):
        raise InputError("the scale must be a finite number", field="lora", value=spec)
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"no such file {str(file)!r}", field="lora", value=spec)
    # read the keys now, not after minutes of model loading
    if not any("lora" in key for key in _state_dict_keys(file, spec)):
        raise InputError("no LoRA weights in this file (no key names 'lora')", field="lora", value=spec)
    return LoraSpec(file, scale)


def _state_dict_keys(file: Path, spec: str) -> list[str]:
    """The tensor names in a LoRA file: a .safetensors header, or a torch checkpoint (weights only)."""
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(file), framework="numpy") as fh:
                return list(fh.keys())
        except Exception as exc:  # SafetensorError for a truncated or foreign file
            raise InputError(f"not a readable .safetensors file ({exc})", field="lora", value=spec) from None
    import torch

    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... for what is no torch file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = f"not a readable .safetensors or torch file ({first[:160]})"
        raise InputError(reason, field="lora", value=spec) from None
    if not isinstance(state, dict):
        raise InputError(
            f"holds a {type(state).__name__}, not a dict of LoRA weights", field="lora", value=spec
        )
    return [str(key) for key in state]


def apply_loras(pipe, specs) -> list[dict]:
    """Load each LoRA (``LoraSpec`` or ``"FILE[:SCALE]"``) into ``pipe`` and activate all with their scales.

    Call before ``apply_fast_profile`` (compile after the adapters exist). Returns, for ``run.json``, one
    ``{"file", "scale", "adapter"}`` per LoRA. A file diffusers cannot read or that does not fit the model
    raises ``InputError`` naming it.
    """
    specs = [parse_lora_spec(s) if isinstance(s, str) else s for s in specs]
    applied = []
    for i, spec in enumerate(specs):
        name = f"lora{i}"
        try:
            pipe.load_lora_weights(str(spec.path), adapter_name=name)
        except Exception as exc:  # diffusers/peft/safetensors raise many kinds for a file that is no Wan LoRA
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            reason = f"not a LoRA this model can load ({first[:200]})"
            raise InputError(reason, field="lora", value=spec.path) from exc
        applied.append({"file": str(spec.path), "scale": spec.scale, "adapter": name})
    if applied:
        pipe.set_adapters([a["adapter"] for a in applied], adapter_weights=[a["scale"] for a in applied])
    return applied
