"""Every knob of a generation run: one dataclass shared by ``vacelab run``, batch, plans and the UI.

Field names are the ``vacelab run`` long option names with dashes as underscores (``--vace-end`` ->
``vace_end``); a batch manifest or experiment plan may set any of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

DEFAULT_MODEL = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
MODEL_ALIASES = {
    "1.3b": "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
    "14b": "Wan-AI/Wan2.1-VACE-14B-diffusers",
}
# Wan2.1's standard negative prompt in English, as diffusers' Wan examples use it.
WAN_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
    "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still "
    "picture, messy background, three legs, many people in the background, walking backwards"
)
OFFLOAD_MODES = ("none", "model", "group", "sequential")
DTYPES = ("auto", "bf16", "fp16", "fp32")
MASK_ENCODINGS = ("reference", "aligned")


@dataclass
class RunSettings:
    """Settings of one generation. ``None`` means "the documented default for this job/device"."""

    prompt: str = ""
    negative_prompt: str | None = None  # None: Wan's standard negative prompt + the job's suggested terms
    model: str = DEFAULT_MODEL
    steps: int = 50
    guidance: float = 5.0
    shift: float | None = None  # None: 3.0 at 480p, 5.0 at 720p and above
    seed: int = 2025
    conditioning_scale: float = 1.0
    dtype: str = "auto"  # auto: bf16 on GPU, fp32 on CPU
    device: str = "auto"
    offload: str = "none"
    vae_tiling: bool = False
    attention: str | None = None  # diffusers attention backend name, e.g. "flash", "_native_cudnn"
    compile: bool = False
    fast: bool = False
    composite: bool = True
    feather: int = 16  # width in pixels of the blend band at the mask border (composite)
    color_match: bool = False
    vace_end: float = 1.0
    mask_encoding: str = "reference"
    lora: list[str] = field(default_factory=list)  # FILE[:SCALE]

    @classmethod
    def field_types(cls) -> dict[str, type]:
        """Name -> Python type of each field (what manifests and plans are validated against)."""
        import typing

        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in fields(cls)}

    def as_dict(self) -> dict:
        return asdict(self)
