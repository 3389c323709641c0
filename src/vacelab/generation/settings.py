"""Every knob of a generation run: one dataclass shared by ``vacelab run``, batch, plans and the UI.

Field names are the ``vacelab run`` long option names with dashes as underscores (``--vace-end`` ->
``vace_end``); a batch manifest or experiment plan may set any of them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

from ..errors import InputError
from .presets import PRESETS

DEFAULT_MODEL = "Wan-AI/Wan2.1-VACE-1.3B-diffusers"
MODEL_ALIASES = {
    "1.3b": "Wan-AI/Wan2.1-VACE-1.3B-diffusers",
    "14b": "Wan-AI/Wan2.1-VACE-14B-diffusers",
    "2.2-a14b": "linoyts/Wan2.2-VACE-Fun-14B-diffusers",  # Wan2.2 VACE-Fun A14B: two experts
}
# Wan2.1's standard negative prompt in English, as diffusers' Wan examples use it.
WAN_NEGATIVE_PROMPT = (
    "Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
    "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
    "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still "
    "picture, messy background, three legs, many people in the background, walking backwards"
)
OFFLOAD_MODES = ("none", "model", "group", "sequential")  # in order: each keeps less on the accelerator
DTYPES = ("auto", "bf16", "fp16", "fp32")
MASK_ENCODINGS = ("reference", "aligned")
PARALLEL_MODES = ("auto", "ulysses", "ring")  # auto: Ulysses where the ranks divide the heads, else ring
COLOR_METHODS = ("mean", "reinhard", "histogram", "mkl")  # colors.METHODS (this module imports no numpy)
LONG_JOB_COLOR_METHOD = "mkl"  # measured by benchmarks/drift.py: see docs/long-videos.md
SEED_LIMIT = 2**64  # torch.Generator.manual_seed takes 0 .. 2**64 - 1
# unipc: diffusers' Wan scheduler (UniPC, 2nd order); euler: 1st-order flow Euler on the same timesteps
# (what step-distilled LoRAs are sampled with: generation/hooks.scheduler_hook)
SCHEDULERS = ("unipc", "euler")
SHIFT_480P = 3.0  # diffusers' WanVACEPipeline docstring: 3.0 for 480p, 5.0 for 720p
SHIFT_720P = 5.0


def _finite(value) -> bool:
    return value is None or math.isfinite(value)


def _setting(
    default=None,
    *,
    choices: tuple[str, ...] | None = None,
    check=None,
    factory=None,
    loads: bool = False,
    two_experts: bool = False,
):
    """A RunSettings field with its rule: ``choices`` (allowed words) or ``check`` (``(ok(value), why)``).

    ``loads``: the field changes the loaded pipeline object (model, dtype, placement, adapters, compile):
    runs that agree on every such field can share one loaded pipeline (:meth:`RunSettings.loading_key`).
    ``two_experts``: the field means something only for a two-expert model (Wan2.2 A14B); set on a
    one-expert model, it is refused (:meth:`RunSettings.two_expert_fields`).
    """
    metadata = {"choices": choices, "check": check, "loads": loads, "two_experts": two_experts}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunSettings:
    """Settings of one generation. ``None`` means "the documented default for this job/device".

    Each field declares its rule once (choices or a range); :meth:`validate` applies them, and argparse,
    manifests, plans and the UI read the same rules through :meth:`choices`.
    """

    prompt: str = ""
    negative_prompt: str | None = None  # None: Wan's standard negative prompt + the job's suggested terms
    model: str = _setting(DEFAULT_MODEL, loads=True)
    steps: int = _setting(50, check=(lambda v: v >= 1, "must be at least 1"))
    guidance: float = _setting(
        5.0, check=(lambda v: math.isfinite(v) and v >= 0, "must be a finite number >= 0")
    )
    # the low-noise expert's guidance (two-expert models); None: the same as guidance
    guidance_2: float | None = _setting(
        check=(lambda v: v is None or (math.isfinite(v) and v >= 0), "must be a finite number >= 0"),
        two_experts=True,
    )
    # where the low-noise expert takes over, as a fraction of the 1000 training timesteps; None: the
    # model's boundary_ratio (0.875 for Wan2.2 A14B)
    boundary: float | None = _setting(
        check=(lambda v: v is None or 0 < v < 1, "must be between 0 and 1 (exclusive)"), two_experts=True
    )
    # None: 3.0 at 480p, 5.0 at 720p and above
    shift: float | None = _setting(
        check=(lambda v: v is None or (math.isfinite(v) and v > 0), "must be a finite number > 0")
    )
    scheduler: str = _setting("unipc", choices=SCHEDULERS)
    # a step-distilled LoRA's recipe (generation/presets.py): fills the settings it names that were not
    # set (:meth:`with_preset`)
    preset: str | None = _setting(
        check=(lambda v: v is None or v in PRESETS, f"unknown preset; choose from {', '.join(PRESETS)}")
    )
    seed: int = _setting(
        2025, check=(lambda v: 0 <= v < SEED_LIMIT, f"must be in 0..{SEED_LIMIT - 1} (64 bits)")
    )
    conditioning_scale: float = _setting(1.0, check=(_finite, "must be a finite number"))
    dtype: str = _setting("auto", choices=DTYPES, loads=True)  # auto: bf16 on GPU, fp32 on CPU
    device: str = _setting("auto", loads=True)
    offload: str = _setting("none", choices=OFFLOAD_MODES, loads=True)
    vae_tiling: bool = _setting(False, loads=True)
    # diffusers attention backend name, e.g. "flash", "_native_cudnn"
    attention: str | None = _setting(None, loads=True)
    compile: bool = _setting(False, loads=True)
    fast: bool = _setting(False, loads=True)
    # lossy: FP8 weights and activations in the DiT and VACE blocks (torchao, CUDA 8.9+; generation/fp8.py)
    fp8: bool = _setting(False, loads=True)
    # lossy step cache (generation/stepcache.py): skip a step while the accumulated relative change of the
    # first block's input stays below this; 0: off (exactly the plain call)
    cache: float = _setting(
        0.0, check=(lambda v: math.isfinite(v) and v >= 0, "must be a finite number >= 0")
    )
    # ranks one job runs in (context parallel, generation/parallel.py): one GPU each, or gloo on the CPU
    parallel: int = _setting(
        1, check=(lambda v: isinstance(v, int) and v >= 1, "must be at least 1 (ranks)"), loads=True
    )
    parallel_mode: str = _setting("auto", choices=PARALLEL_MODES, loads=True)
    composite: bool = True
    # width in pixels of the blend band at the mask border (composite)
    feather: int = _setting(16, check=(lambda v: 0 <= v <= 16, "must be 0..16 px"))
    # True: the generated region's mean colour onto the kept pixels at its border, and each later window
    # of a long job matched to the previous one on their shared frames with LONG_JOB_COLOR_METHOD; a
    # method name (COLOR_METHODS): that method between windows
    color_match: bool | str = _setting(
        False,
        check=(
            lambda v: isinstance(v, bool) or v in COLOR_METHODS,
            f"choose true, {', '.join(COLOR_METHODS)}",
        ),
    )
    vace_end: float = _setting(1.0, check=(lambda v: 0 < v <= 1, "must be in (0, 1]"))
    mask_encoding: str = _setting("reference", choices=MASK_ENCODINGS)
    lora: list[str] = _setting(factory=list, loads=True)  # FILE[:SCALE], into every expert
    lora_high: list[str] = _setting(factory=list, loads=True, two_experts=True)  # into transformer only
    lora_low: list[str] = _setting(factory=list, loads=True, two_experts=True)  # into transformer_2 only
    # long jobs: window i's prompt (fewer than windows: the last repeats); empty: ``prompt`` throughout
    window_prompts: list[str] = _setting(
        factory=list,
        check=(lambda v: all(isinstance(p, str) and p.strip() for p in v), "must be non-empty texts"),
    )

    @classmethod
    def field_types(cls) -> dict[str, type]:
        """Name -> Python type of each field (what manifests and plans are validated against)."""
        import typing

        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in fields(cls)}

    @classmethod
    def choices(cls, name: str) -> tuple[str, ...] | None:
        """The words field ``name`` accepts, or ``None`` when it is not a choice."""
        return next((f.metadata.get("choices") for f in fields(cls) if f.name == name), None)

    def validate(self) -> None:
        """Refuse an out-of-range or unknown value with an :class:`InputError` naming the field."""
        for spec in fields(self):
            value = getattr(self, spec.name)
            choices, check = spec.metadata.get("choices"), spec.metadata.get("check")
            if choices and value not in choices:
                raise InputError(f"choose from {', '.join(choices)}", field=spec.name, value=value)
            if check and not check[0](value):
                raise InputError(check[1], field=spec.name, value=value)

    def with_preset(self, explicit=None) -> RunSettings:
        """These settings with ``preset``'s values filled in where not set explicitly; ``explicit``: the
        names the user set (``None``: those that differ from the defaults). Applying it again changes
        nothing; without a preset it returns ``self``."""
        if self.preset is None or getattr(self, "_preset_applied", False):
            return self
        self.validate()  # an unknown preset name is refused here
        defaults = RunSettings()
        if explicit is None:
            explicit = {f.name for f in fields(self) if getattr(self, f.name) != getattr(defaults, f.name)}
        values = {k: v for k, v in PRESETS[self.preset].values.items() if k not in explicit}
        resolved = replace(self, **values)
        resolved._preset_applied = True  # not a field: as_dict and manifests do not see it
        return resolved

    def window_color_method(self) -> str | None:
        """The method matching a long job's later windows to the previous one (``None``: off)."""
        if self.color_match is False:
            return None
        return LONG_JOB_COLOR_METHOD if self.color_match is True else self.color_match

    def two_expert_fields(self) -> list[str]:
        """The fields set here that only a two-expert model can use (left at their defaults: none)."""
        defaults = RunSettings()
        return [
            f.name
            for f in fields(self)
            if f.metadata.get("two_experts") and getattr(self, f.name) != getattr(defaults, f.name)
        ]

    def loading_key(self) -> tuple:
        """The values of the fields that change the loaded pipeline (``loads``): equal keys, one load."""
        return tuple(str(getattr(self, f.name)) for f in fields(self) if f.metadata.get("loads"))

    def flow_shift(self, height: int, width: int) -> float:
        """``shift``, or the documented default for a job of this size: 3.0 up to 480p (the area of
        832x480), 5.0 above (720p)."""
        if self.shift is not None:
            return self.shift
        return SHIFT_480P if height * width <= 480 * 832 else SHIFT_720P

    def as_dict(self) -> dict:
        return asdict(self)
