"""``--fp8``: FP8 weights and activations for the DiT and VACE blocks through torchao (lossy).

torchao's ``Float8DynamicActivationFloat8WeightConfig`` (per-row scales) replaces the weight of each
``nn.Linear`` in ``blocks`` and ``vace_blocks`` of every expert by an FP8 tensor and quantises each
activation on the fly; the matmuls run on FP8 tensor cores, which need compute capability 8.9 or newer
(Ada, Hopper, Blackwell). Embeddings, norms, the output head, the text encoder and the VAE stay as they
are. torchao is optional (``pip install 'vacelab[gpu]'``); :func:`check_fp8` refuses a run that cannot
have it before the model loads.
"""

from __future__ import annotations

import importlib.util

from ..errors import InputError
from .experts import experts

MIN_CAPABILITY = (8, 9)
BLOCKS = ("blocks", "vace_blocks")


def check_fp8(device: str, dtype: str, offload: str) -> None:
    """Refuse ``--fp8`` in one line where it cannot run: not CUDA, a GPU older than compute capability
    8.9, no torchao, a dtype other than bf16 (``dtype``: ``auto`` or a ``--dtype`` name), or offload that
    moves weights block by block. Device first: on a CPU it answers without importing torch."""
    if not device.startswith("cuda"):
        raise InputError(
            f"FP8 needs a CUDA GPU of compute capability {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} or newer "
            f"(Ada, Hopper, Blackwell); this run is on {device}",
            field="fp8",
        )
    if importlib.util.find_spec("torchao") is None:
        raise InputError("needs torchao: pip install 'vacelab[gpu]' (or pip install torchao)", field="fp8")
    import torch

    capability = torch.cuda.get_device_capability(device)
    if capability < MIN_CAPABILITY:
        name = torch.cuda.get_device_name(device)
        raise InputError(
            f"{name} has compute capability {capability[0]}.{capability[1]}; FP8 matmuls need "
            f"{MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} or newer",
            field="fp8",
        )
    if dtype not in ("auto", "bf16"):
        raise InputError(f"needs bf16 weights (the default on a GPU), not --dtype {dtype}", field="fp8")
    if offload in ("group", "sequential"):
        raise InputError(
            f"not with --offload {offload} (torchao's FP8 weights are not what its hooks move); "
            "use --offload none or model",
            field="fp8",
        )


def quantize_transformer(transformer) -> None:
    """Quantise the linear layers of one transformer's DiT and VACE blocks to FP8 in place (torchao)."""
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    for name in BLOCKS:
        quantize_(getattr(transformer, name), Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()))


def apply_fp8(pipe) -> dict:
    """:func:`quantize_transformer` on every expert of ``pipe``; returns what was done, for ``run.json``."""
    import torchao

    for _, module in experts(pipe):
        quantize_transformer(module)
    return {
        "method": "torchao Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())",
        "modules": [f"{expert}.{name}" for expert, _ in experts(pipe) for name in BLOCKS],
        "torchao": torchao.__version__,
    }
