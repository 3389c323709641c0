"""What vacelab needs to know of a model before it trusts it: its experts, its boundary, its geometry.

Read from the files (``model_index.json``, ``vae/config.json``, the first expert's ``config.json``) before
anything loads, so that a bad choice is refused in one line before the audit prints; and read again from
the loaded pipeline (a pipeline handed to ``run_job`` was never checked from files). Both go through
:func:`check_model`.

- Experts: ``transformer``, and ``transformer_2`` for a two-expert model (Wan2.2 A14B). Settings that
  only a second expert can use (``guidance_2``, ``boundary``, ``lora_high``, ``lora_low``) are refused
  for a one-expert model; a two-expert model needs a boundary (its ``boundary_ratio`` or ``boundary``).
- Geometry: the job folder, the audit and prepare assume the Wan2.1 VAE (4x in time, 8x in space) and
  the DiT patch (1, 2, 2); a model whose VAE or patch differs is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..geometry import PATCH_S, VAE_STRIDE_S, VAE_STRIDE_T
from .experts import EXPERT_NAMES, expert_names
from .settings import RunSettings

WAN21_VAE_DOWNSAMPLE = [False, True, True]  # AutoencoderKLWan's default temperal_downsample


@dataclass
class ModelFacts:
    """A model's experts, its ``boundary_ratio`` and the configs its geometry is read from."""

    experts: tuple[str, ...]
    boundary_ratio: float | None = None
    vae: dict = field(default_factory=dict)
    transformer: dict = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: Path) -> ModelFacts | None:
        """The facts of a diffusers model folder (``None`` when its ``model_index.json`` is unreadable)."""
        try:
            index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        names = tuple(n for n in EXPERT_NAMES if (index.get(n) or [None])[0] is not None)
        return cls(
            experts=names,
            boundary_ratio=index.get("boundary_ratio"),
            vae=_read_config(folder / "vae" / "config.json"),
            transformer=_read_config(folder / names[0] / "config.json") if names else {},
        )

    @classmethod
    def of(cls, pipe) -> ModelFacts:
        """The facts of a loaded ``WanVACEPipeline``."""
        names = expert_names(pipe)
        return cls(
            experts=names,
            boundary_ratio=pipe.config.get("boundary_ratio"),
            vae=dict(pipe.vae.config),
            transformer=dict(getattr(pipe, names[0]).config) if names else {},
        )

    def geometry(self) -> tuple[int, int, tuple[int, ...]]:
        """(frames per latent step, pixels per latent pixel, DiT patch), as ``WanVACEPipeline`` reads them."""
        down = self.vae.get("temperal_downsample") or WAN21_VAE_DOWNSAMPLE
        spatial = 2 ** len(down) * (self.vae.get("patch_size") or 1)
        return 2 ** sum(down), spatial, tuple(self.transformer.get("patch_size") or (1, PATCH_S, PATCH_S))


def _read_config(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _shown(value):
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def check_model(settings: RunSettings, model: str, facts: ModelFacts) -> None:
    """Refuse, in one line, settings this model cannot honour or a model whose geometry vacelab's jobs and
    audit do not describe."""
    temporal, spatial, patch = facts.geometry()
    if (temporal, spatial, patch) != (VAE_STRIDE_T, VAE_STRIDE_S, (1, PATCH_S, PATCH_S)):
        raise InputError(
            f"its VAE encodes {temporal} frames and {spatial}x{spatial} pixels per latent and its DiT patch "
            f"is {patch}; vacelab's job folders and audit describe the Wan2.1 VAE ({VAE_STRIDE_T} frames, "
            f"{VAE_STRIDE_S}x{VAE_STRIDE_S} pixels) and the (1, {PATCH_S}, {PATCH_S}) patch",
            field="model",
            value=model,
        )
    wanted = settings.two_expert_fields()
    if len(facts.experts) < 2 and wanted:
        raise InputError(
            f"needs a two-expert model (Wan2.2 A14B: transformer and transformer_2); {model} has one expert",
            field=wanted[0],
            value=_shown(getattr(settings, wanted[0])),
        )
    if len(facts.experts) > 1 and facts.boundary_ratio is None and settings.boundary is None:
        raise InputError(
            f"{model} has two experts but no boundary_ratio in its model_index.json: set the boundary "
            "(0 < R < 1) where the low-noise expert takes over",
            field="boundary",
        )
