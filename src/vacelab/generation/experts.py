"""The denoising experts of a pipeline: the transformers that run its steps.

A Wan2.1 VACE pipeline has one, ``transformer``. A two-expert pipeline (Wan2.2 A14B) also has
``transformer_2``, which runs the low-noise steps. Everything vacelab applies to "the model" - hooks,
attention backend, compile, the fast profile, LoRAs - goes over :func:`experts`, never over
``pipe.transformer`` alone, so a feature written once covers every expert.
"""

from __future__ import annotations

EXPERT_NAMES = ("transformer", "transformer_2")  # in the order of the steps they run


def expert_names(pipe) -> tuple[str, ...]:
    """The pipeline components that are experts here (``transformer_2`` only where it is set)."""
    return tuple(name for name in EXPERT_NAMES if getattr(pipe, name, None) is not None)


def experts(pipe) -> list[tuple[str, object]]:
    """``(name, module)`` of each expert of ``pipe``, in step order."""
    return [(name, getattr(pipe, name)) for name in expert_names(pipe)]
