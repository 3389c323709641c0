"""One generation: a job folder in, a results folder out, through diffusers' ``WanVACEPipeline``.

:func:`run_job` does, in order: read the job, check the settings and the output folder, audit the job
(warnings printed, ``BAD_GEOMETRY`` refused), estimate memory, load the pipeline (unless one is given),
hand the pipeline the job at exactly its size and length, generate, composite / colour-match, write the
results folder (``run.json`` last). Every stage is timed into ``run.json``.

What vacelab hands diffusers, and why:

- ``video``: the job's frames as PIL RGB at exactly ``height x width``, ``num_frames`` = the job's
  length: diffusers neither resizes nor pads them (a smaller video would be zero-padded silently).
- ``mask``: PIL ``L`` 0/255 at the same size (a mask of another size would be lanczos-resized and stop
  being binary).
- ``reference_images``: each fitted on a white canvas of the job's size (``media.fit_on_canvas``) and
  passed in REVERSE order: diffusers prepends each reference in turn, so the last one handed ends up
  first; reversed, the first latent step is the user's first reference, as in official VACE.
- ``generator``: a CPU ``torch.Generator`` seeded with ``seed`` (the same noise on every device).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..job import Job, check_new_folder, load_job
from ..result import Result, write_result
from .settings import OFFLOAD_MODES, WAN_NEGATIVE_PROMPT, RunSettings

Progress = Callable[[str, int, int], None]  # progress(stage, done, total)
RUN_FORMAT = 1


# ------------------------------------------------------------------------------------------ settings
def negative_prompt_for(job: Job, settings: RunSettings) -> str:
    """``--negative-prompt`` if given, else Wan's standard negative prompt plus the job's suggested terms."""
    if settings.negative_prompt is not None:
        return settings.negative_prompt
    return f"{WAN_NEGATIVE_PROMPT}, {job.negative_prompt}" if job.negative_prompt else WAN_NEGATIVE_PROMPT


def lighter_offload(mode: str) -> str | None:
    """The next offload mode that keeps less on the accelerator (``None`` after ``sequential``)."""
    index = OFFLOAD_MODES.index(mode)
    return OFFLOAD_MODES[index + 1] if index + 1 < len(OFFLOAD_MODES) else None


# ------------------------------------------------------------------------------------------ preflight
def audit_summary(job: Job, settings: RunSettings) -> dict:
    """Audit the job, print its warnings, refuse BAD_GEOMETRY; return the summary kept in run.json."""
    problems = job.geometry.problems()
    if problems:
        raise InputError(f"{job.path or 'job'}: BAD_GEOMETRY: {'; '.join(problems)}")
    from ..audit import audit_job

    report = audit_job(job, encoding=settings.mask_encoding).to_dict()
    findings = [
        {key: f.get(key) for key in ("code", "severity", "message")} for f in report.get("findings", [])
    ]
    bad = [f for f in findings if f["code"] == "BAD_GEOMETRY"]
    if bad:
        raise InputError(f"{job.path or 'job'}: BAD_GEOMETRY: {bad[0]['message']}")
    for finding in findings:
        if finding["severity"] in ("warning", "error"):
            print(f"audit {finding['severity']}: {finding['code']}: {finding['message']}", file=sys.stderr)
    return {"findings": findings, "summary": report.get("summary")}


def memory_preflight(settings: RunSettings, job: Job) -> dict:
    """Estimate accelerator memory before loading; refuse when the weights alone cannot fit, suggesting
    the lightest offload mode that does; warn when activations may not. Returns what run.json records."""
    import torch

    from .memory import estimate_memory, suggest_offload
    from .pipeline import resolve_device, resolve_dtype, resolve_model

    device = resolve_device(settings.device)
    dtype_bytes = resolve_dtype(settings.dtype, device).itemsize
    estimate = estimate_memory(
        resolve_model(settings.model), job.geometry, dtype_bytes=dtype_bytes, vae_tiling=settings.vae_tiling
    )
    record = {"device": device, "estimate": estimate.as_dict() if estimate else None}
    if estimate is None or not device.startswith("cuda"):
        return record
    free, total = torch.cuda.mem_get_info(torch.device(device))
    record.update(free_bytes=free, total_bytes=total)
    need, resident = estimate.per_mode[settings.offload], estimate.resident[settings.offload]
    if need <= free:
        return record
    hint = suggest_offload(estimate, free)
    advice = (
        f"use --offload {hint}"
        if hint
        else "use --offload sequential --vae-tiling, fewer frames or a smaller size"
    )
    message = (
        f"--offload {settings.offload}: this run needs about {need / 1024**3:.1f} GiB on {device}, "
        f"{free / 1024**3:.1f} GiB is free: {advice}"
    )
    if resident > free:
        raise InputError(message)
    print(f"warning: {message}", file=sys.stderr)
    return record


# ------------------------------------------------------------------------------------------- pipeline
def pipeline_inputs(job: Job) -> dict:
    """The conditioning exactly as diffusers must receive it (see the module docstring)."""
    from PIL import Image

    from ..media import fit_on_canvas

    frames, height, width = job.mask.shape
    video = [Image.fromarray(np.ascontiguousarray(frame), "RGB") for frame in job.video]
    mask = [Image.fromarray(m.astype(np.uint8) * 255, "L") for m in job.mask]
    refs = [Image.fromarray(fit_on_canvas(ref, (height, width)), "RGB") for ref in reversed(job.refs)]
    return {
        "video": video,
        "mask": mask,
        "reference_images": refs or None,
        "height": height,
        "width": width,
        "num_frames": frames,
    }


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """diffusers' float output in [0, 1] -> uint8, rounded as diffusers' own PIL conversion does."""
    return (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)


class Stopwatch:
    """Seconds per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


WRAPPER_STAGES = ("read_job", "audit", "inputs", "composite", "write")


def flow_shift(settings: RunSettings, height: int, width: int) -> float:
    """``--shift``, or the documented default for this frame size."""
    from .pipeline import default_shift

    return settings.shift if settings.shift is not None else default_shift(height, width)


def generate(
    pipe,
    job: Job,
    settings: RunSettings,
    *,
    prompt: str,
    negative: str,
    shift: float,
    seed: int | None = None,
    clock: Stopwatch,
    report: Progress,
) -> np.ndarray:
    """One pass of the pipeline over ``job`` (one clip, 4k+1 frames): the raw output, uint8 [F, H, W, 3].

    ``seed`` defaults to ``settings.seed``; stages are timed into ``clock`` ("inputs", "generate").
    """
    import torch

    from .pipeline import mask_encoding_hook, set_flow_shift, vace_end_hook

    device = str(pipe._execution_device)
    with clock("inputs"):
        set_flow_shift(pipe, shift)
        inputs = pipeline_inputs(job)

    def on_step(pipe_, step, timestep, tensors):
        report("denoise", step + 1, settings.steps)
        return {}

    with ExitStack() as hooks:
        if settings.mask_encoding == "aligned":
            from ..geometry import mask_latent

            hooks.enter_context(mask_encoding_hook(pipe, mask_latent(job.mask, len(job.refs), "aligned")))
        hooks.enter_context(vace_end_hook(pipe, settings.vace_end, settings.steps))
        report("denoise", 0, settings.steps)
        try:
            with clock("generate"):
                raw = pipe(
                    prompt=prompt,
                    negative_prompt=negative,
                    conditioning_scale=settings.conditioning_scale,
                    num_inference_steps=settings.steps,
                    guidance_scale=settings.guidance,
                    generator=torch.Generator("cpu").manual_seed(settings.seed if seed is None else seed),
                    output_type="np",
                    callback_on_step_end=on_step,
                    **inputs,
                ).frames[0]
        except torch.OutOfMemoryError:
            raise _out_of_memory(settings, device, job) from None
        except RuntimeError as exc:
            if settings.attention and "No available kernel" in str(exc):  # e.g. cuDNN: unsupported head size
                raise InputError(
                    f"--attention {settings.attention}: no kernel for this model/GPU/dtype"
                ) from None
            raise
    video = to_uint8(raw)
    if video.shape != job.video.shape:
        raise RuntimeError(f"pipeline returned {video.shape}, expected {job.video.shape}")
    return video


def versions() -> dict:
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


def peak_memory(device: str) -> dict:
    import resource

    import torch

    out = {"cpu_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device.startswith("cuda"):
        out["accelerator_peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def run_job(
    job_or_path: Job | str | os.PathLike,
    out: str | os.PathLike,
    settings: RunSettings,
    *,
    pipeline=None,
    progress: Progress | None = None,
) -> Result:
    """Generate ``job_or_path`` with ``settings`` and write the results folder ``out``; return the Result.

    ``pipeline``: an already loaded ``WanVACEPipeline`` (batch, UI); otherwise :func:`load_pipeline`.
    ``progress(stage, done, total)`` is called for each stage and each denoising step.
    """
    import torch

    from .composite import color_match, composite

    report = progress or (lambda stage, done, total: None)
    clock = Stopwatch()
    started, run_start = datetime.now(UTC), time.perf_counter()
    with clock("read_job"):
        job = job_or_path if isinstance(job_or_path, Job) else load_job(job_or_path)
        settings.validate()
        out = check_new_folder(out, [job.path] if job.path else [])
        prompt = settings.prompt or job.prompt
        if not prompt:
            raise InputError("required (the job suggests none)", field="prompt")
        negative = negative_prompt_for(job, settings)
        if pipeline is None:
            from .pipeline import check_loadable

            check_loadable(settings)  # before the audit prints anything: a bad input is the only line
    if job.windows and len(job.windows) > 1:
        from .windows import run_windows

        context = dict(pipeline=pipeline, progress=report, clock=clock, started=started, run_start=run_start)
        return run_windows(job, out, settings, prompt=prompt, negative=negative, **context)
    report("audit", 0, 1)
    with clock("audit"):
        audit = audit_summary(job, settings)
    report("audit", 1, 1)
    pipe, memory = obtain_pipeline(job, settings, pipeline, clock=clock, report=report)
    device = str(pipe._execution_device)
    height, width = job.mask.shape[1:]
    shift = flow_shift(settings, height, width)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    video = generate(
        pipe, job, settings, prompt=prompt, negative=negative, shift=shift, clock=clock, report=report
    )
    report("composite", 0, 1)
    with clock("composite"):
        colour = None
        if settings.color_match:
            video, colour = color_match(video, np.asarray(job.video), job.mask)
        if settings.composite:
            video = composite(video, np.asarray(job.video), job.mask, settings.feather)
    report("composite", 1, 1)
    run = run_record(
        job, settings, pipe, prompt=prompt, negative=negative, shift=shift, colour=colour, audit=audit,
        memory=memory, started=started,
    )  # fmt: skip
    return write_run(out, job, video, run, clock=clock, run_start=run_start, report=report)


def obtain_pipeline(job: Job, settings: RunSettings, pipeline, *, clock: Stopwatch, report: Progress):
    """``(pipe, memory record)``: ``pipeline`` if given, else loaded after the memory preflight."""
    memory = memory_preflight(settings, job) if pipeline is None else {}
    report("load", 0, 1)
    with clock("load"):
        from .pipeline import load_pipeline

        pipe = pipeline if pipeline is not None else load_pipeline(settings)
    report("load", 1, 1)
    return pipe, memory


def run_record(
    job: Job, settings: RunSettings, pipe, *, prompt, negative, shift, colour, audit, memory, started
) -> dict:
    """The content of ``run.json`` (timings are added by :func:`write_run`)."""
    from .pipeline import model_revision, vace_cut_step

    device = str(pipe._execution_device)
    frames, height, width = job.mask.shape
    return {
        "vacelab_run": RUN_FORMAT,
        "settings": settings.as_dict(),
        "used": {
            "prompt": prompt,
            "negative_prompt": negative,
            "model": getattr(pipe, "_vacelab_model", settings.model),
            "model_revision": model_revision(getattr(pipe, "_vacelab_model", settings.model)),
            "seed": settings.seed,
            "shift": shift,
            "device": device,
            "dtype": str(pipe.transformer.dtype).removeprefix("torch."),
            "vae_dtype": str(pipe.vae.dtype).removeprefix("torch."),
            "vace_control_steps": vace_cut_step(settings.vace_end, settings.steps),
            "reference_order": "as given (first reference = first latent step)",
            "color_match": colour,
            "fast_profile": getattr(pipe, "_vacelab_profile", None),  # what --fast set, and why
            "loras": getattr(pipe, "_vacelab_loras", []),
        },
        "job": {"path": str(job.path) if job.path else None, "task": job.task, **job.geometry.as_dict()},
        "output": {"frames": frames, "height": height, "width": width, "fps": job.fps},
        "audit": audit,
        "memory": {**memory, **peak_memory(device)},
        "versions": versions(),
        "started": started.isoformat(timespec="seconds"),
    }


def write_run(
    out: Path, job: Job, video: np.ndarray, run: dict, *, clock: Stopwatch, run_start: float, report: Progress
) -> Result:
    """Write the results folder (``run.json`` last, with the timings) and return the Result."""
    report("write", 0, 1)
    write_start = time.perf_counter()

    def finish(run: dict) -> None:  # called by write_result just before run.json
        now = time.perf_counter()
        clock.seconds.update(write=now - write_start, total=now - run_start)
        run["timings"] = _timings(clock.seconds)
        run["finished"] = datetime.now(UTC).isoformat(timespec="seconds")

    path = write_result(
        out, video, run, fps=job.fps, source=job.source_frames(), mask=job.mask, finish=finish
    )
    report("write", 1, 1)
    return Result(video=video, run=run, path=Path(path))


def _timings(seconds: dict[str, float]) -> dict:
    overhead = sum(seconds.get(stage, 0.0) for stage in WRAPPER_STAGES)
    total = seconds.get("total", 0.0)
    return {
        **{k: round(v, 4) for k, v in seconds.items()},
        "wrapper_overhead": round(overhead, 4),
        "wrapper_overhead_fraction": round(overhead / total, 4) if total else None,
    }


def _out_of_memory(settings: RunSettings, device: str, job: Job) -> InputError:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    lighter = None if device == "cpu" else lighter_offload(settings.offload)
    advice = f"retry with --offload {lighter}" if lighter else "retry with fewer frames or a smaller size"
    if not settings.vae_tiling:
        advice += " (and/or --vae-tiling)"
    geometry = job.geometry
    return InputError(
        f"out of memory on {device} with --offload {settings.offload} at {geometry.frames} frames "
        f"{geometry.width}x{geometry.height} ({geometry.tokens} tokens): {advice}"
    )


class TqdmProgress:
    """A ``progress`` callable drawing one tqdm bar per stage (denoising steps counted) on stderr."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            unit = "step" if stage == "denoise" else "stage"
            self.bar = tqdm(
                total=total,
                desc=stage,
                unit=unit,
                leave=stage == "denoise",
                file=sys.stderr,
                disable=not sys.stderr.isatty(),  # no bar redraws in a log or a pipe
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        """Close the open bar (call it also when the run fails, so the error line stands alone)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
