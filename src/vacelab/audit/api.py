"""The audit's entry points: audit a job or a mask, and write the exact conditioning mask tensor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import geometry as geo
from .. import media
from ..errors import InputError
from . import formats
from .analysis import LatentStep, MaskAnalysis, as_bool_mask
from .findings import SEVERITIES, Finding, geometry_findings, long_job, mask_findings, sort_findings


@dataclass
class SpatialView:
    """One frame of the audited mask, for the picture's spatial view (``draw_audit``)."""

    frame: int  # counted as the report counts frames (from the audited window's start)
    clip_frame: int  # the same frame counted from the job's start
    mask: np.ndarray  # bool [H, W], True = GENERATE (the part the model can use: multiples of 16 px)
    image: np.ndarray | None  # uint8 [H, W, 3]: the conditioning video's frame, when known
    thin: list[tuple[str, str, np.ndarray, int]]  # (part, severity, blocks, block_px): MaskAnalysis's


@dataclass
class AuditReport:
    """What the model sees of one mask: geometry, one row per latent step, per-frame KEEP and findings."""

    geometry: geo.Geometry
    encoding: str
    latents: list[LatentStep]
    frame_keep: list[float]  # KEEP share of each analysed frame
    findings: list[Finding]
    source: dict = field(default_factory=dict)
    spatial: SpatialView | None = None  # one frame's spatial view, drawn into the picture when set

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def to_dict(self) -> dict:
        """The JSON object of ``vacelab audit --json`` (see docs/audit.md)."""
        return {
            "source": self.source,
            "geometry": self.geometry.as_dict(),
            "mask_encoding": self.encoding,
            "latents": [step.to_dict() for step in self.latents],
            "frame_keep_fraction": [round(k, 4) for k in self.frame_keep],
            "findings": [f.to_dict() for f in self.findings],
            "summary": self.counts(),
        }

    def text(self) -> str:
        """The human-readable report: geometry, the read table, then findings, worst first."""
        return formats.text(self)


def audit_job(
    job, *, encoding: str = "reference", window: int | None = None, frame: int | None = None
) -> AuditReport:
    """Audit a :class:`vacelab.job.Job` (its mask, reference count and video size).

    A long job runs window by window; ``window`` picks the one to audit (default: the first). ``frame``
    adds the spatial view of that frame (see :func:`audit_arrays`) over the job's conditioning video.
    """
    report = audit_arrays(
        job.mask,
        ref_frames=len(job.refs),
        encoding=encoding,
        video_shape=tuple(job.video.shape[:3]),
        windows=job.windows,
        window=window,
        frame=frame,
        video=job.video if frame is not None else None,
    )
    report.source = {"job": str(job.path) if job.path else "(in memory)", "task": job.task, **report.source}
    return report


def audit_arrays(
    mask: np.ndarray,
    *,
    ref_frames: int = 0,
    encoding: str = "reference",
    video_shape: tuple[int, int, int] | None = None,
    windows: list[tuple[int, int]] | None = None,
    window: int | None = None,
    frame: int | None = None,
    video: np.ndarray | None = None,
) -> AuditReport:
    """Audit a mask bool [F, H, W] (True = GENERATE; or a :class:`~vacelab.media.PackedMask`, unpacked
    one window at a time) with ``ref_frames`` reference images.

    ``video_shape`` (F, H, W) of the conditioning video, when known, is checked against the mask.
    A bad geometry is reported as ``BAD_GEOMETRY``; the other findings then describe the part the model
    could use (the first 4n+1 frames, the top-left multiple of 16 pixels). ``windows`` (a long job's
    ``[(start, stop), ...]``) and ``window`` audit one window exactly as ``vacelab run`` conditions it
    (``geometry.Window.mask``: the kept head KEEP); its frames are counted from its start.
    ``frame`` (counted the same way) adds :class:`SpatialView` of that frame as ``report.spatial``, over
    ``video`` (uint8 [F, H, W, 3], the job's whole clip) when given.
    """
    if encoding not in geo.MASK_ENCODINGS:
        raise InputError(
            f"choose from {', '.join(geo.MASK_ENCODINGS)}", field="mask_encoding", value=encoding
        )
    if not isinstance(mask, media.PackedMask):  # a packed one is bool [F, H, W]: unpacked window by window
        mask = as_bool_mask(mask)
    source, extra, offset = {}, [], 0
    plan = geo.WindowPlan.of(windows, mask.shape[0])
    if plan.is_long or window is not None:
        part = plan.window(window)
        offset = part.start
        mask = part.mask(mask)  # exactly what `vacelab run` gives the model
        if video_shape is not None:
            video_shape = (min(video_shape[0], part.stop) - part.start, *video_shape[1:])
        start, head = part.start, part.head
        kept = f"; kept head frames 0-{head - 1} (clip {start}-{start + head - 1}) KEEP" if head else ""
        source["window"] = (
            f"{part.index} of {part.count} (clip frames {start}-{part.stop - 1}; frames below count from "
            f"{start}{kept})"
        )
        if part.count > 1:
            extra.append(long_job(part))
    mask = as_bool_mask(mask)
    frames, height, width = mask.shape
    geometry = geo.Geometry(frames=frames, height=height, width=width, ref_frames=ref_frames)
    usable = ((frames - 1) // geo.VAE_STRIDE_T * geo.VAE_STRIDE_T + 1, height // geo.TOKEN_PX * geo.TOKEN_PX)
    usable += (width // geo.TOKEN_PX * geo.TOKEN_PX,)
    if min(usable) <= 0:
        raise InputError(f"mask of {width}x{height} px is too small to audit (at least 16x16 px needed)")
    findings = geometry_findings(geometry, usable, video_shape)
    packed = np.packbits(mask[: usable[0], : usable[1], : usable[2]], axis=-1)
    seen = MaskAnalysis(packed, usable, encoding)
    return AuditReport(
        geometry=geometry,
        encoding=encoding,
        latents=seen.steps,
        frame_keep=[float(k) for k in seen.frame_keep],
        findings=sort_findings(findings + mask_findings(seen) + extra),
        source=source,
        spatial=None if frame is None else spatial_view(seen, mask, frame, offset, video),
    )


def spatial_view(seen: MaskAnalysis, mask: np.ndarray, frame, offset: int, video) -> SpatialView:
    """Frame ``frame`` of the analysed mask (``offset``: its first frame in ``video``), its thin parts."""
    if isinstance(frame, bool) or not isinstance(frame, int | np.integer) or not 0 <= frame < seen.frames:
        raise InputError(f"outside the audited frames (0..{seen.frames - 1})", field="frame", value=frame)
    frame = int(frame)
    height, width = seen.height, seen.width
    image = None
    if video is not None and offset + frame < len(video) and video.shape[1:3] == mask.shape[1:]:
        image = np.asarray(video[offset + frame, :height, :width], np.uint8)
    return SpatialView(
        frame=frame,
        clip_frame=offset + frame,
        mask=np.array(mask[frame, :height, :width], bool),
        image=image,
        thin=seen.thin_blocks_at(frame),
    )


def save_mask_latent(path: str | Path, mask: np.ndarray, *, ref_frames: int = 0, encoding: str = "reference"):
    """Write the exact conditioning mask tensor, float32 [64, R + T, H/8, W/8], as ``.npy`` (atomically)."""
    from .. import media

    mask = as_bool_mask(mask)
    problems = geo.Geometry(*mask.shape).problems()
    if problems:
        raise InputError(
            f"bad geometry, nothing written ({problems[0]})", field="save_mask_latent", value=path
        )
    media.save_array(path, geo.mask_latent(mask, ref_frames=ref_frames, encoding=encoding))
