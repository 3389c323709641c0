"""``--preset NAME``: the published sampling recipes of step-distilled LoRAs (lossy speed modes).

A preset fills the settings its recipe names (steps, guidance, shift, scheduler) where the user did not
set them; it loads no file: the LoRA is the user's own (``--lora``, or ``--lora-high`` / ``--lora-low`` on a
two-expert model). Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Preset:
    """One recipe: the settings it fills, the LoRA it expects, and where it was published."""

    values: dict = field(default_factory=dict)
    lora: str = ""  # which LoRA file(s) the recipe is for, and into which expert
    source: str = ""
    credit: str = ""  # the source in a few words (``vacelab run --help``)


PRESETS = {
    "lightx2v": Preset(
        values={"steps": 4, "guidance": 1.0, "shift": 5.0, "scheduler": "euler"},
        lora="a lightx2v 4-step LoRA: Wan2.1 --lora wan2.1_t2v_14b_lora_rank64_lightx2v_4step.safetensors "
        "(lightx2v/Wan2.1-Distill-Loras); Wan2.2 A14B --lora-high ..._high_noise_lora_rank64_lightx2v_4step"
        " and --lora-low ..._low_noise_..._4step (lightx2v/Wan2.2-Distill-Loras), whose recipe switches "
        "experts after 2 steps (boundary_step_index 2), which the model's boundary 0.875 gives at shift 5",
        source="LightX2V configs/distill/wan21/wan_t2v_distill_lora_4step_cfg.json and "
        "configs/distill/wan22/wan_moe_t2v_distill_lora.json (github.com/ModelTC/LightX2V): infer_steps 4, "
        "enable_cfg false, sample_shift 5, Euler steps at timesteps 1000/750/500/250",
        credit="LightX2V's distill LoRA configs",
    ),
    "causvid": Preset(
        values={"steps": 8, "guidance": 1.0, "scheduler": "unipc"},
        lora="Kijai's CausVid LoRA (Kijai/WanVideo_comfy: Wan21_CausVid_14B_T2V_lora_rank32*.safetensors, "
        "or the bidirect2 1.3B one) at a scale of 0.3-0.5: --lora FILE:0.4",
        source="Kijai's CausVid LoRA page, civitai.com/models/1585622: CFG 1, 4-9 steps (more steps, more "
        "motion), strength about 0.5 and lower with VACE; 0.3 with unipc for about 12 steps",
        credit="Kijai's CausVid LoRA page",
    ),
}


def preset_values(name: str) -> dict:
    """The settings preset ``name`` fills (an unknown name: ``KeyError``)."""
    return dict(PRESETS[name].values)


def describe_presets() -> str:
    """The presets for ``vacelab run --help``: name, source in short, the settings each fills."""
    return "; ".join(
        f"{name} ({preset.credit}): " + ", ".join(f"{k} {v}" for k, v in preset.values.items())
        for name, preset in PRESETS.items()
    )
