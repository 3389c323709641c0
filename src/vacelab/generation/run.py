"""One run: a job folder in, a results folder out, through diffusers' ``WanVACEPipeline``.

:func:`run_job` does, in order, every stage timed into ``run.json``:

1. read the job, check the settings, the prompt and the output folder, and (unless a pipeline is given)
   everything about loading that can be refused without loading (``pipeline.check_loadable``);
2. audit each window's conditioning (``preflight.audit_windows``: warnings logged, ``BAD_GEOMETRY``
   refused) and, before loading, estimate memory (``preflight.memory_preflight``);
3. load and place the pipeline (``pipeline.load_pipeline``), unless one is given;
4. generate the job window by window (``windows.generate_windows``; a short job is one window): one pass
   each (``passes.generate``), colour match, composite, stitch;
5. write the results folder, ``run.json`` last (``record``).

With ``settings.parallel`` > 1 the stages from 2 on run in that many ranks (``parallel.launch``), every
rank the whole job with its transformer calls split; rank 0 alone writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from .. import media
from ..errors import InputError
from ..folders import check_new_folder, check_writable, output_lock, part_folder
from ..job import Job, load_job
from ..result import Result, load_result
from . import parallel
from .context import Progress, RunContext, Stopwatch, no_progress
from .model import ModelFacts, check_model
from .pipeline import LoadedPipeline, as_loaded, check_loadable, load_pipeline
from .preflight import audit_windows, memory_preflight, window_part
from .presets import PRESETS
from .record import peak_memory, reset_peak_memory, run_record, write_run
from .settings import WAN_NEGATIVE_PROMPT, RunSettings
from .windows import ReadOnlyStore, WindowStore, generate_windows, resume_key

log = logging.getLogger("vacelab")


def negative_prompt_for(job: Job, settings: RunSettings) -> str:
    """``negative_prompt`` if given, else Wan's standard negative prompt plus the job's suggested terms."""
    if settings.negative_prompt is not None:
        return settings.negative_prompt
    return f"{WAN_NEGATIVE_PROMPT}, {job.negative_prompt}" if job.negative_prompt else WAN_NEGATIVE_PROMPT


def check_preset_lora(settings: RunSettings) -> None:
    """A ``preset`` is the recipe of a step-distilled LoRA: without any LoRA its few steps leave the
    output unfinished, which is said in one warning (the run goes on: it may be what is being measured)."""
    if settings.preset and not (settings.lora or settings.lora_high or settings.lora_low):
        log.warning(
            "warning: --preset %s is the recipe of a step-distilled LoRA and no --lora is given: %d steps "
            "of the base model leave the output unfinished (%s)",
            settings.preset, settings.steps, PRESETS[settings.preset].lora,
        )  # fmt: skip


def run_job(
    job_or_path: Job | str | os.PathLike,
    out: str | os.PathLike,
    settings: RunSettings,
    *,
    pipeline=None,
    progress: Progress | None = None,
    gpus: list[int] | None = None,
) -> Result:
    """Generate ``job_or_path`` with ``settings`` and write the results folder ``out``; return the Result.

    ``pipeline``: an already loaded pipeline (a :class:`LoadedPipeline`, or a ``WanVACEPipeline`` placed
    by the caller); otherwise :func:`load_pipeline`. ``progress(stage, done, total)`` is called for each
    stage and each denoising step. ``gpus``: the visible GPUs (indices) the ranks of a parallel run use
    (default the first ``settings.parallel``).
    """
    clock, started, run_start = Stopwatch(), datetime.now(UTC), time.perf_counter()
    with clock("read_job"):
        job = job_or_path if isinstance(job_or_path, Job) else load_job(job_or_path, packed_mask=True)
        settings.validate()
        settings = settings.with_preset()
        check_preset_lora(settings)
        if settings.parallel > 1:
            parallel.check_options(settings, pipeline)
        out = check_new_folder(out, [job.path] if job.path else [])
        check_writable(out, expected_bytes=2 * job.video.nbytes)  # the output array, then its media
        prompt = settings.prompt or next(iter(settings.window_prompts), "") or job.prompt
        if not prompt:
            raise InputError("required (the job suggests none)", field="prompt")
        # before the audit logs anything: a bad input is the only line the run prints
        request = check_loadable(settings) if pipeline is None else None
        if settings.parallel > 1:
            facts = request.facts
            heads = facts.transformer.get("num_attention_heads") if facts is not None else None
            tokens = [window_part(job, window).geometry.tokens for window in job.plan]
            parallel.check_split(settings, heads, request.device, tokens)
    ctx = RunContext(
        job, settings, prompt, negative_prompt_for(job, settings), progress or no_progress, clock,
        started=started, run_start=run_start,
    )  # fmt: skip
    with output_lock(out):  # a second command writing this folder is refused now, not after generating
        check_new_folder(out, [job.path] if job.path else [])  # a command holding the lock may have ended
        if settings.parallel > 1:
            path = None if isinstance(job_or_path, Job) else job_or_path  # ranks read a folder themselves
            light = replace(ctx, job=job if path is None else None, report=no_progress)
            parallel.launch(
                _rank_run,
                (light, out, request, path),
                ranks=settings.parallel,
                device=request.device,
                progress=ctx.report,
                gpus=gpus,
            )
            return load_result(out, mmap=True)  # as rank 0's write_run returned it
        return _generate(ctx, out, pipeline, request)


def _rank_run(report: Progress, ctx: RunContext, out: Path, request, path) -> None:
    """One rank of a parallel run (``parallel.launch``): the job read from ``path`` unless it came along."""
    ctx.report = report
    if path is not None:
        ctx.job = load_job(path)
    _generate(ctx, out, None, request)


def _generate(ctx: RunContext, out: Path, pipeline, request) -> Result | None:
    """The stages of :func:`run_job` after its checks, with ``out`` locked (``None`` on a parallel run's
    ranks other than 0, which write nothing: they reuse the windows rank 0 saved and never save any)."""
    writes = parallel.writes()
    audit_windows(ctx)
    store = None
    if ctx.plan.is_long:
        with ctx.clock("resume"):  # hashing the job: what a saved window must match
            store = (WindowStore if writes else ReadOnlyStore)(out, resume_key(ctx))
    memory = {}
    if pipeline is None:  # the memory a pass needs: the first window is the longest
        memory = memory_preflight(request, ctx.settings, window_part(ctx.job, ctx.plan.window(0)).geometry)
    ctx.loaded = _obtain(ctx, pipeline, request)
    check_model(ctx.settings, ctx.loaded.model, ModelFacts.of(ctx.loaded.pipe))
    reset_peak_memory(ctx.loaded.device)
    sink = frame_file(out, ctx.job.video.shape) if writes else contextlib.nullcontext((None, NoFrames()))
    with sink as (path, sink):
        windows = generate_windows(ctx, store, sink)
        sink.close()
        if ctx.loaded.parallel is not None:  # every rank's, while the others wait in this collective
            ctx.loaded.parallel["peak_memory"] = parallel.gather(peak_memory(ctx.loaded.device))
        if not writes:
            return None
        result = write_run(ctx, out, path, run_record(ctx, out, windows, memory))
    if store is not None:
        store.remove()
    return result


@contextlib.contextmanager
def frame_file(out: Path, shape: tuple[int, ...]):
    """``(path, writer)`` of the ``.npy`` a run writes its finished frames into, in a hidden
    ``.OUT.<8>.part`` folder beside ``out`` (removed at the end; a killed run's is swept as stale)."""
    with part_folder(out) as folder, media.FrameWriter(folder / "video.npy", shape) as writer:
        yield writer.path, writer


class NoFrames:
    """The frame sink of a parallel run's ranks other than 0: the frames go nowhere (rank 0 writes)."""

    def append(self, frames) -> None:
        """Drop ``frames``."""

    def close(self) -> None:
        """Nothing to close."""


def _obtain(ctx: RunContext, pipeline, request) -> LoadedPipeline:
    """The run's pipeline: ``pipeline`` if given, else loaded for ``request`` (timed as ``load``)."""
    ctx.report("load", 0, 1)
    with ctx.clock("load"):
        if pipeline is not None:
            loaded = as_loaded(pipeline, ctx.settings)
        else:
            loaded = load_pipeline(ctx.settings, request)
    ctx.report("load", 1, 1)
    return loaded
