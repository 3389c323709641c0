"""What ``vacelab ui`` shows of a job, in words and files: the findings, the memory estimate, zips."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from .. import media
from ..audit import formats


@dataclass
class View:
    """What the page shows of one job: preview video, audit picture, findings in words."""

    preview: Path
    audit: Path
    findings: str
    report_text: str
    windows: int = 1  # a long job's window count
    window: int = 0  # the window audited


def memory_text(job, model: str | None, settings) -> str:
    """The accelerator memory ``job``'s largest window needs with ``settings`` and ``model``, in words."""
    from ..generation.memory import GIB, estimate_memory
    from ..generation.pipeline import resolve_device, resolve_dtype
    from ..generation.preflight import window_part

    if job is None or model is None:
        return ""
    geometry = window_part(job, job.plan.window(0)).geometry
    device = resolve_device(settings.device)
    torch_dtype = resolve_dtype(settings.dtype, device)  # the run's own rule for "auto"
    dtype = str(torch_dtype).removeprefix("torch.")
    estimate = estimate_memory(model, geometry, dtype_bytes=torch_dtype.itemsize,
                               vae_tiling=settings.vae_tiling)  # fmt: skip
    if estimate is None:
        return f"Memory: no estimate for `{model}` (not a known model, not in the local cache)."
    gib = {mode: need / GIB for mode, need in estimate.per_mode.items()}
    others = " · ".join(f"{mode} {v:.1f}" for mode, v in gib.items() if mode != settings.offload)
    text = (
        f"**Memory estimate** ({dtype}, {geometry.frames} frames of {geometry.width}×{geometry.height} a "
        "pass): "
        f"about **{gib[settings.offload]:.1f} GiB** on the accelerator with offload {settings.offload} "
        f"(other offload modes: {others} GiB)."
    )
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        text += f" {device}: {free / GIB:.1f} GiB free."
    else:
        text += f" This machine runs it on {device}: the figures are for a GPU."
    return text


def findings_markdown(job, report) -> str:
    """The audit in plain words: one line about the job, then each finding, worst first, then notes."""
    g, seen = job.geometry, report.geometry  # the job's; the audited pass's (a long job's window)
    refs = f" · {g.ref_frames} reference image{'s' * (g.ref_frames != 1)}" if g.ref_frames else ""
    lines = [
        f"**{job.task}** · {g.frames} frames · {g.width}×{g.height} px · {job.fps:g} fps{refs} · "
        f"{job.generate_share():.1%} of pixels to GENERATE · {seen.latent_frames} latent steps, "
        f"{seen.tokens:,} tokens{' a window' if job.windows else ''}",
        "",
        formats.markdown(report),
    ]
    if job.windows:
        spans = ", ".join(f"{a}–{b - 1}" for a, b in job.windows)
        lines[1:1] = ["", f"Long job: {len(job.windows)} windows (frames {spans}). The audit shows window "
                      f"{report.source['window']}; pick another with *Window audited*."]  # fmt: skip
    if job.notes:
        lines += ["", "Notes from building the job:"] + [f"- {note}" for note in job.notes]
    return "\n".join(lines)


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip ``folder`` (entries under its own name) into ``archive``, atomically."""
    with media.atomic_path(archive) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, Path(folder.name) / path.relative_to(folder))
    return archive


__all__ = ["View", "findings_markdown", "memory_text", "zip_folder"]
