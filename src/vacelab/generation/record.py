"""The run record, ``run.json``: what was asked, what was used, what it cost; and writing the results.

Paths in the record are relative to the results folder that holds it (``job.path``: ``../jobs/a``), so a
results folder built inside a temporary folder and moved with it still names its job correctly;
:attr:`vacelab.result.Result.job_path` resolves it.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__, media
from ..result import VIDEO_ARRAY, Result, write_result
from .context import RunContext
from .hooks import vace_cut_step
from .pipeline import model_revision
from .presets import PRESETS

RUN_FORMAT = 1
WRAPPER_STAGES = ("read_job", "audit", "inputs", "composite", "write")


def versions() -> dict:
    """The versions of vacelab and of the libraries a run depends on."""
    import diffusers
    import torch
    import transformers

    return {
        "vacelab": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def reset_peak_memory(device: str) -> None:
    """Start counting the accelerator's peak memory from here (what :func:`peak_memory` reports)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: str) -> dict:
    import resource

    out = {"cpu_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device.startswith("cuda"):
        import torch

        out["accelerator_peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def relative_to(path: Path | None, folder: Path) -> str | None:
    """``path`` written relative to ``folder`` (``None`` stays ``None``)."""
    return None if path is None else os.path.relpath(Path(path).resolve(), Path(folder).resolve())


def run_record(ctx: RunContext, out: Path, windows: list[dict], memory: dict) -> dict:
    """The content of ``run.json`` for the results folder ``out`` (timings are added by :func:`write_run`).

    ``windows``: each window's record; a long job's are kept under ``windows``, a one-window job's
    colour match and audit stand alone.
    """
    job, settings, loaded = ctx.job, ctx.settings, ctx.loaded
    frames, height, width = job.mask.shape
    if ctx.plan.is_long:
        colour = [w["color_match"] for w in windows] if settings.color_match else None
        audit = _audit_total(ctx.audits)
    else:
        colour, audit = windows[0]["color_match"], ctx.audits[0]
    run = {
        "vacelab_run": RUN_FORMAT,
        "settings": settings.as_dict(),
        "used": {
            "prompt": ctx.prompt,
            "negative_prompt": ctx.negative,
            "model": loaded.model,
            "model_revision": model_revision(loaded.model),
            "seed": settings.seed,
            "shift": ctx.shift,
            "device": loaded.device,
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "vae_dtype": str(loaded.pipe.vae.dtype).removeprefix("torch."),
            "vace_control_steps": vace_cut_step(settings.vace_end, settings.steps),
            "reference_order": "as given (first reference = first latent step)",
            "color_match": colour,
            "fast_profile": loaded.profile,  # what --fast set, and why
            "fp8": loaded.fp8,
            "loras": loaded.loras,
            "cache": cache_record(ctx, windows),
            "preset": preset_record(settings),
        },
        "job": {"path": relative_to(job.path, out), "task": job.task, **job.geometry.as_dict()},
        "output": {"frames": frames, "height": height, "width": width, "fps": job.fps},
        "audit": audit,
        "memory": {**memory, **peak_memory(loaded.device)},
        "versions": versions(),
        "started": ctx.started.isoformat(timespec="seconds"),
    }
    if loaded.parallel is not None:  # ranks, mode, communication backend, each rank's peak memory
        run["used"]["parallel"] = loaded.parallel
    if len(loaded.experts) > 1:
        run["used"]["experts"] = expert_record(ctx)
    if ctx.plan.is_long:
        run["windows"] = windows
    return run


def preset_record(settings) -> dict | None:
    """``--preset``: its name, the values of its recipe that the run used and those the user overrode,
    and its source (``None`` without a preset)."""
    if settings.preset is None:
        return None
    recipe = PRESETS[settings.preset]
    used = {k: v for k, v in recipe.values.items() if getattr(settings, k) == v}
    overridden = {k: getattr(settings, k) for k in recipe.values if k not in used}
    return {"name": settings.preset, "used": used, "overridden": overridden, "source": recipe.source}


def cache_record(ctx: RunContext, windows: list[dict]) -> dict | None:
    """``--cache``: the step cache's record (``None`` when off); a long job's ``skipped`` holds one list
    per window (each window's full record is in its own ``cache``)."""
    if ctx.settings.cache <= 0:
        return None
    if not ctx.plan.is_long:
        return windows[0].get("cache")
    return {"threshold": ctx.settings.cache, "skipped": [w.get("cache", {}).get("skipped") for w in windows]}


def expert_record(ctx: RunContext) -> dict:
    """A two-expert run: the boundary, each expert's guidance, the steps it ran and its LoRAs."""
    settings, loaded = ctx.settings, ctx.loaded
    boundary = (
        settings.boundary if settings.boundary is not None else loaded.pipe.config.get("boundary_ratio")
    )
    guidance = {"transformer": settings.guidance, "transformer_2": settings.guidance_2}
    if guidance["transformer_2"] is None:
        guidance["transformer_2"] = settings.guidance
    loras = {
        name: [{"file": a["file"], "scale": a["scale"]} for a in loaded.loras if name in a["experts"]]
        for name in loaded.experts
    }
    return {"boundary": boundary, "guidance": guidance, "steps": ctx.expert_steps, "loras": loras}


def write_run(ctx: RunContext, out: Path, video: Path, run: dict) -> Result:
    """Write the results folder from the output frames in the ``.npy`` file ``video`` (moved into it;
    ``run.json`` last, with the timings) and return the Result (its frames memory-mapped)."""
    ctx.report("write", 0, 1)
    write_start = time.perf_counter()

    def finish(run: dict) -> None:  # called by write_result just before run.json
        now = time.perf_counter()
        ctx.clock.seconds.update(write=now - write_start, total=now - ctx.run_start)
        run["timings"] = _timings(ctx.clock.seconds)
        run["finished"] = datetime.now(UTC).isoformat(timespec="seconds")

    job = ctx.job
    path = write_result(
        out, video, run, fps=job.fps, source=job.iter_source_frames(), mask=job.mask, finish=finish
    )
    ctx.report("write", 1, 1)
    return Result(video=media.load_array(Path(path) / VIDEO_ARRAY, mmap=True), run=run, path=Path(path))


def _timings(seconds: dict[str, float]) -> dict:
    overhead = sum(seconds.get(stage, 0.0) for stage in WRAPPER_STAGES)
    total = seconds.get("total", 0.0)
    return {
        **{k: round(v, 4) for k, v in seconds.items()},
        "wrapper_overhead": round(overhead, 4),
        "wrapper_overhead_fraction": round(overhead / total, 4) if total else None,
    }


def _audit_total(audits: list[dict]) -> dict:
    """All windows' findings (each tagged with its window) and their counts, for run.json's ``audit``."""
    findings = [{**f, "window": i} for i, audit in enumerate(audits) for f in audit["findings"]]
    summary: dict[str, int] = {}
    for audit in audits:
        for key, value in (audit.get("summary") or {}).items():
            summary[key] = summary.get(key, 0) + value
    return {"findings": findings, "summary": summary, "windows": len(audits)}
