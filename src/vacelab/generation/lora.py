"""LoRA adapters for ``vacelab run --lora FILE[:SCALE]`` (repeatable), loaded through diffusers' LoRA loading.

``lora`` goes into every expert of the model; on a two-expert model (Wan2.2 A14B) ``lora_high`` goes into
``transformer`` (the high-noise steps) only and ``lora_low`` into ``transformer_2`` only, as Wan2.2 speed
LoRAs ship in high/low pairs (diffusers' ``load_into_transformer_2``).

Any Wan2.1 LoRA that ``WanVACEPipeline.load_lora_weights`` reads works: diffusers/peft format
(``transformer.blocks.N.attn1.to_q.lora_A.weight``), the original Wan format (``diffusion_model.*``) and
musubi-tuner's (``lora_unet_*``), which diffusers converts: step-distillation LoRAs (4-8 steps) and style
LoRAs alike. A distillation LoRA changes the output and needs its own steps/guidance (lossy: see
docs/performance.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from vacelab.errors import InputError

from .experts import expert_names, experts

# the settings naming LoRAs, and the experts each goes into (None: every expert of the model)
LORA_FIELDS = {"lora": None, "lora_high": ("transformer",), "lora_low": ("transformer_2",)}


@dataclass(frozen=True)
class LoraSpec:
    """A LoRA file, its scale and the experts it goes into (``None``: every expert)."""

    path: Path
    scale: float = 1.0
    experts: tuple[str, ...] | None = None


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


def parse_lora_spec(spec: str, field: str = "lora") -> LoraSpec:
    """``"FILE[:SCALE]"`` -> ``LoraSpec``; FILE must exist and hold LoRA weights (.safetensors or a torch
    checkpoint, read before any model loads); a ``:`` not followed by a number is in FILE. ``field``
    names the setting in errors."""
    path, text = split_lora_spec(spec)
    scale = 1.0 if text is None else float(text)
    if not math.isfinite(scale):
        raise InputError("the scale must be a finite number", field=field, value=spec)
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"no such file {str(file)!r}", field=field, value=spec)
    # read the keys now, not after minutes of model loading
    if not any("lora" in key for key in _state_dict_keys(file, spec, field)):
        raise InputError("no LoRA weights in this file (no key names 'lora')", field=field, value=spec)
    return LoraSpec(file, scale)


def lora_specs(settings) -> list[LoraSpec]:
    """Every LoRA ``settings`` name (``lora``, ``lora_high``, ``lora_low``), read and checked, each with the
    experts it goes into."""
    return [
        replace(parse_lora_spec(spec, name), experts=targets)
        for name, targets in LORA_FIELDS.items()
        for spec in getattr(settings, name)
    ]


def _state_dict_keys(file: Path, spec: str, field: str) -> list[str]:
    """The tensor names in a LoRA file: a .safetensors header, or a torch checkpoint (weights only)."""
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(file), framework="numpy") as fh:
                return list(fh.keys())
        except Exception as exc:  # SafetensorError for a truncated or foreign file
            raise InputError(f"not a readable .safetensors file ({exc})", field=field, value=spec) from None
    import torch

    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError ... for what is no torch file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        reason = f"not a readable .safetensors or torch file ({first[:160]})"
        raise InputError(reason, field=field, value=spec) from None
    if not isinstance(state, dict):
        raise InputError(
            f"holds a {type(state).__name__}, not a dict of LoRA weights", field=field, value=spec
        )
    return [str(key) for key in state]


def apply_loras(pipe, specs) -> list[dict]:
    """Load each LoRA (``LoraSpec`` or ``"FILE[:SCALE]"``) into its experts of ``pipe`` (every expert unless
    the spec names some) and activate them with their scales, expert by expert.

    Call before ``apply_fast_profile`` (compile after the adapters exist). Returns, for ``run.json``, one
    ``{"file", "scale", "adapter", "experts"}`` per LoRA. A file diffusers cannot read or that does not fit
    the model, or an expert the model lacks, raises ``InputError`` naming it.
    """
    specs = [parse_lora_spec(s) if isinstance(s, str) else s for s in specs]
    present = expert_names(pipe)
    applied = []
    for i, spec in enumerate(specs):
        name, targets = f"lora{i}", spec.experts or present
        for expert in targets:
            if expert not in present:
                reason = f"this model has no {expert} (one expert: use lora)"
                raise InputError(reason, field="lora_low", value=str(spec.path))
            try:
                pipe.load_lora_weights(
                    str(spec.path), adapter_name=name, load_into_transformer_2=expert == "transformer_2"
                )
            except (
                Exception
            ) as exc:  # diffusers/peft/safetensors raise many kinds for a file that is no Wan LoRA
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                reason = f"not a LoRA this model can load ({first[:200]})"
                raise InputError(reason, field="lora", value=spec.path) from exc
        applied.append(
            {"file": str(spec.path), "scale": spec.scale, "adapter": name, "experts": list(targets)}
        )
    for expert, module in experts(pipe):
        mine = [a for a in applied if expert in a["experts"]]
        if mine:
            module.set_adapters([a["adapter"] for a in mine], weights=[a["scale"] for a in mine])
    return applied
