"""Device, dtype, progress and weight loading shared by the SAM 2 and SAM 3 trackers and the control
annotators (:mod:`vacelab.annotators`)."""

from __future__ import annotations

import json
import os
import sys

import torch
from tqdm.auto import tqdm

from ..errors import InputError
from ..weights import load_failed, quiet_loading

FIELD = "track_model"  # the setting naming the tracking model (``vacelab prepare --track-model``)

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def resolve_device_dtype(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """``auto`` device: CUDA when available; ``auto`` dtype: bf16 on CUDA, fp32 on CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch_device = torch.device(device)
    except RuntimeError:
        raise InputError(f"tracking device {device!r} is not a torch device (cpu, cuda, cuda:N)") from None
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"tracking device {device!r}: this machine has no CUDA GPU (use --device cpu)")
    if dtype == "auto":
        dtype = "bf16" if torch_device.type == "cuda" else "fp32"
    return torch_device, _DTYPES[dtype]


class ProgressSteps:
    """Frames done: a tqdm bar (``True``; ``None``: on a terminal only), nothing (``False``) or
    ``callback(done, total)``."""

    def __init__(self, progress, total: int, desc: str = "tracking"):
        self.total, self.done = total, 0
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True or (progress is None and sys.stderr.isatty()):  # no bar drawn into a log
            self.bar = tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True)

    def __call__(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def read_json(model: str, filename: str, local_only: bool = False) -> dict | None:
    """A JSON file of a model folder or the hub cache (downloaded unless ``local_only``); None if absent."""
    from transformers.utils import cached_file

    try:
        path = cached_file(
            model,
            filename,
            local_files_only=local_only,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError):  # ValueError: neither a folder nor a valid hub id
        return None
    if path is None:
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def load_model(
    model_cls, model: str, model_types: tuple[str, ...], what: str, device, dtype, local_only, field=FIELD
):
    """``model_cls.from_pretrained(model)`` on ``device``/``dtype``; missing or wrong weights: InputError
    on ``field`` (the setting naming the model).

    ``local_only``: read the folder or the cache only (``weights.check_weights``, asked by ``track_mask``
    and the control annotators before anything loads)."""
    config = read_json(model, "config.json", local_only)
    if config is None:
        raise _no_weights(model, local_only, field)
    if config.get("model_type") not in model_types:
        raise InputError(
            f"{what}: {model!r} is a {config.get('model_type')!r} model, "
            f"expected one of {', '.join(model_types)}"
        )
    try:
        with quiet_loading():
            loaded = model_cls.from_pretrained(model, dtype=dtype, local_files_only=local_only)
    except OSError:
        raise _no_weights(model, local_only, field) from None
    return loaded.to(device).eval()


def _no_weights(model: str, local_only: bool, field: str = FIELD) -> InputError:
    """The refusal for a folder without a saved model, or a hub model whose files are missing."""
    if os.path.isdir(model):
        return InputError(
            "no model in this folder (expected one saved with save_pretrained)", field=field, value=model
        )
    return load_failed(model, local_only, field=field)


def load_processor(model: str, what: str, local_only: bool, field: str = FIELD):
    """transformers' ``AutoImageProcessor`` of ``model`` (``preprocessor_config.json``); none: InputError."""
    from transformers import AutoImageProcessor

    if read_json(model, "preprocessor_config.json", local_only) is None:
        raise InputError(f"{what}: no image processor (preprocessor_config.json)", field=field, value=model)
    with quiet_loading():
        return AutoImageProcessor.from_pretrained(model, local_files_only=local_only)
