"""Checks before the model runs: the audit of what each window conditions on, and the memory estimate.

Both report through the ``vacelab`` logger (the CLI shows its records on stderr): audit warnings and
errors, a long job's windows, a memory estimate above the free memory. A ``BAD_GEOMETRY`` finding and
weights that cannot fit are refused with an :class:`InputError`.
"""

from __future__ import annotations

import logging

from .. import media
from ..errors import InputError
from ..geometry import Geometry, Window
from ..job import Job
from .context import RunContext
from .pipeline import LoadRequest
from .settings import RunSettings

log = logging.getLogger("vacelab")


def audit_summary(job: Job, settings: RunSettings) -> dict:
    """Audit the job, log its warnings, refuse BAD_GEOMETRY; return the summary kept in run.json."""
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
            log.warning("audit %s: %s: %s", finding["severity"], finding["code"], finding["message"])
    return {"findings": findings, "summary": report.get("summary")}


def window_part(job: Job, window: Window) -> Job:
    """The job's frames of ``window`` with the mask the model gets there (what the audit reads)."""
    video = job.video[window.frames]
    mask = window.mask(job.mask)
    return Job(task=job.task, video=video, mask=mask, fps=job.fps, refs=job.refs, path=job.path)


def audit_windows(ctx: RunContext) -> None:
    """Audit each window's conditioning (``window.mask``, the kept head KEEP), in order, into
    ``ctx.audits``; log a long job's windows."""
    job, plan = ctx.job, ctx.plan
    if plan.is_long:
        log.info("long job: %d frames in %d windows at %g fps", plan.frames, len(plan), job.fps)
    ctx.report("audit", 0, len(plan))
    with ctx.clock("audit"):
        for window in plan:
            if plan.is_long:
                log.info(window.describe())
            ctx.audits.append(audit_summary(window_part(job, window), ctx.settings))
            media.release(job.video)  # the window's source pages, if the audit read them
            ctx.report("audit", window.index + 1, len(plan))


def memory_preflight(request: LoadRequest, settings: RunSettings, geometry: Geometry) -> dict:
    """Estimate accelerator memory before loading; refuse when the weights alone cannot fit, suggesting
    the lightest offload mode that does; warn when activations may not. Returns what run.json records.

    ``geometry``: the largest clip one pass generates (a long job's first window).
    """
    from .memory import estimate_memory, suggest_offload

    device = request.device
    estimate = estimate_memory(
        request.model, geometry, dtype_bytes=request.dtype.itemsize, vae_tiling=settings.vae_tiling
    )
    record = {"device": device, "estimate": estimate.as_dict() if estimate else None}
    if estimate is None or not device.startswith("cuda"):
        return record
    import torch

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
    need_gib, free_gib = need / 1024**3, free / 1024**3
    message = f"this run needs about {need_gib:.1f} GiB on {device}, {free_gib:.1f} GiB is free: {advice}"
    if resident > free:
        raise InputError(message, field="offload", value=settings.offload)
    log.warning("warning: --offload %s: %s", settings.offload, message)
    return record
