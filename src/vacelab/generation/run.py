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
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from .. import media
from ..errors import InputError
from ..folders import check_new_folder, check_writable, output_lock, part_folder
from ..job import Job, load_job
from ..result import Result
from .context import Progress, RunContext, Stopwatch, no_progress
from .model import ModelFacts, check_model
from .pipeline import LoadedPipeline, as_loaded, check_loadable, load_pipeline
from .preflight import audit_windows, memory_preflight, window_part
from .record import reset_peak_memory, run_record, write_run
from .settings import WAN_NEGATIVE_PROMPT, RunSettings
from .windows import WindowStore, generate_windows, resume_key


def negative_prompt_for(job: Job, settings: RunSettings) -> str:
    """``negative_prompt`` if given, else Wan's standard negative prompt plus the job's suggested terms."""
    if settings.negative_prompt is not None:
        return settings.negative_prompt
    return f"{WAN_NEGATIVE_PROMPT}, {job.negative_prompt}" if job.negative_prompt else WAN_NEGATIVE_PROMPT


def run_job(
    job_or_path: Job | str | os.PathLike,
    out: str | os.PathLike,
    settings: RunSettings,
    *,
    pipeline=None,
    progress: Progress | None = None,
) -> Result:
    """Generate ``job_or_path`` with ``settings`` and write the results folder ``out``; return the Result.

    ``pipeline``: an already loaded pipeline (a :class:`LoadedPipeline`, or a ``WanVACEPipeline`` placed
    by the caller); otherwise :func:`load_pipeline`. ``progress(stage, done, total)`` is called for each
    stage and each denoising step.
    """
    clock, started, run_start = Stopwatch(), datetime.now(UTC), time.perf_counter()
    with clock("read_job"):
        job = job_or_path if isinstance(job_or_path, Job) else load_job(job_or_path, packed_mask=True)
        settings.validate()
        out = check_new_folder(out, [job.path] if job.path else [])
        check_writable(out, expected_bytes=2 * job.video.nbytes)  # the output array, then its media
        prompt = settings.prompt or next(iter(settings.window_prompts), "") or job.prompt
        if not prompt:
            raise InputError("required (the job suggests none)", field="prompt")
        # before the audit logs anything: a bad input is the only line the run prints
        request = check_loadable(settings) if pipeline is None else None
    ctx = RunContext(
        job, settings, prompt, negative_prompt_for(job, settings), progress or no_progress, clock,
        started=started, run_start=run_start,
    )  # fmt: skip
    with output_lock(out):  # a second command writing this folder is refused now, not after generating
        check_new_folder(out, [job.path] if job.path else [])  # a command holding the lock may have ended
        return _generate(ctx, out, pipeline, request)


def _generate(ctx: RunContext, out: Path, pipeline, request) -> Result:
    """The stages of :func:`run_job` after its checks, with ``out`` locked."""
    audit_windows(ctx)
    store = None
    if ctx.plan.is_long:
        with ctx.clock("resume"):  # hashing the job: what a saved window must match
            store = WindowStore(out, resume_key(ctx))
    memory = {}
    if pipeline is None:  # the memory a pass needs: the first window is the longest
        memory = memory_preflight(request, ctx.settings, window_part(ctx.job, ctx.plan.window(0)).geometry)
    ctx.loaded = _obtain(ctx, pipeline, request)
    check_model(ctx.settings, ctx.loaded.model, ModelFacts.of(ctx.loaded.pipe))
    reset_peak_memory(ctx.loaded.device)
    with frame_file(out, ctx.job.video.shape) as (path, sink):
        windows = generate_windows(ctx, store, sink)
        sink.close()
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
