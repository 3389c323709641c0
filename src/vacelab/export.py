"""Put a run back into the user's own footage: ``vacelab export RUN --out PATH``.

A job is the source cut to the model's size, rate and length (cover-resize, centre crop, resampled in
time). Export undoes that for an ``inpaint`` or ``remove`` run: for every frame of the source in the job's
time range, at the source's own resolution and rate,

- the job frame nearest in time is taken (the same frame when the job was prepared with ``--fps source``);
- its GENERATE region is mapped back through the crop and the resize (Pillow's bicubic over the region
  only) and blended in with the job's mask, itself mapped back bilinearly: the blend runs over about one
  job pixel (the upscale factor in source pixels) at the mask's edge, whose inside the run's feather band
  already matched to the kept pixels;
- every other pixel is the source's, bit for bit.

The result is an mp4 (H.264 by default, H.265) or a ProRes ``.mov`` with the source's audio for that time
range copied in (no re-encode), or a folder of PNG frames (lossless; no audio) when ``out`` has no suffix.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import media
from .errors import InputError
from .folders import check_new_folder, write_folder
from .job import Job, load_job
from .result import Result, load_result

EXPORTABLE = ("inpaint", "remove")  # the tasks whose output frames are the source's frames, edited
VIDEO_SUFFIXES = {".mp4": ("h264", "h265"), ".mov": ("prores", "h264", "h265")}
log = logging.getLogger("vacelab")


@dataclass
class Export:
    """What :func:`export_run` wrote: ``frames`` at ``fps``, ``width`` x ``height``, with audio or not."""

    path: Path
    frames: int
    fps: float
    width: int
    height: int
    audio: bool = False
    notes: list[str] = field(default_factory=list)


def export_run(
    run: str | os.PathLike | Result, out: str | os.PathLike, *, codec: str | None = None
) -> Export:
    """Composite the run ``run`` into its source video at full resolution and rate; write ``out``.

    ``out``: a ``.mp4`` (``codec`` h264, the default, or h265), a ``.mov`` (prores by default) or a new
    folder (PNG frames). Raises :class:`InputError` for a run or job that cannot be exported.
    """
    result = run if isinstance(run, Result) else load_result(run, mmap=True)  # read frame by frame
    if result.job_path is None or not (result.job_path / "job.json").is_file():
        raise InputError(f"{result.path}: its job folder {result.job_path} is gone; export needs it")
    job = load_job(result.job_path, packed_mask=True)  # its mask read frame by frame
    codec = check_export(job, out, codec, where=str(result.path))
    if result.video.shape[:3] != job.mask.shape:
        raise InputError(f"{result.path}: its frames {list(result.video.shape[:3])} do not fit its job")
    source = job.source
    out = Path(out)
    mapping = FrameMapping.of(job, result.video)
    notes = mapping.notes()
    frames = mapping.composited()
    if codec is None:
        write_folder(out, lambda folder: _write_pngs(folder, frames))
        audio = False
    else:
        span = (source["path"], source["start"], source["start"] + mapping.count / mapping.fps)
        audio = media.write_video(out, frames, mapping.fps, codec=codec, audio=span)
    for note in notes:
        log.info("export: %s", note)
    size = mapping.source_hw
    return Export(out, mapping.count, mapping.fps, size[1], size[0], audio, notes)


def check_export(
    job: Job, out: str | os.PathLike, codec: str | None = None, *, where: str = ""
) -> str | None:
    """Refuse, before any work, a job that cannot be exported or an ``out`` that cannot take it; return the
    codec (``None``: a folder of PNG frames). ``where`` names the run in the messages."""
    where = f"{where or job.path}: "
    if job.task not in EXPORTABLE:
        raise InputError(
            f"{where}a {job.task} job; export puts inpaint and remove runs back into their source"
        )
    source = job.source
    if not source:
        raise InputError(f"{where}its job was built without a source video (or before vacelab recorded one)")
    if source.get("fps") is None:
        raise InputError(f"{where}its source {source['path']} is a still image or an image folder")
    if not Path(source["path"]).is_file():
        raise InputError(f"{where}its source video {source['path']} is gone")
    out = Path(out)
    suffix = out.suffix.lower()
    if not suffix:
        if codec is not None:
            raise InputError("a folder of PNG frames takes no codec; give OUT.mp4 or OUT.mov", field="codec",
                             value=codec)  # fmt: skip
        check_new_folder(out, [source["path"]])
        return None
    if suffix not in VIDEO_SUFFIXES:
        raise InputError("must be a .mp4 or .mov file, or a folder (no suffix) for PNG frames", field="out",
                         value=out)  # fmt: skip
    allowed = VIDEO_SUFFIXES[suffix]
    codec = codec or allowed[0]
    if codec not in allowed:
        raise InputError(
            f"does not go in a {suffix} file (use {', '.join(allowed)})", field="codec", value=codec
        )
    if out.exists() or out.is_symlink():
        raise InputError("exists (nothing is overwritten)", field="out", value=out)
    return codec


@dataclass
class FrameMapping:
    """How the job's frames lie in the source: the crop and scale in space, the frame each source frame of
    the job's time range takes in time."""

    job: Job
    video: np.ndarray  # the run's frames at job size
    source_hw: tuple[int, int]
    fps: float  # the source's rate
    count: int  # source frames in the job's time range

    @classmethod
    def of(cls, job: Job, video: np.ndarray) -> FrameMapping:
        source = job.source
        fps = float(source["fps"])
        count = max(1, math.ceil(len(job.mask) * fps / job.fps - 1e-6))
        return cls(job, video, (int(source["height"]), int(source["width"])), fps, count)

    def job_frame(self, k: int) -> int:
        """The job frame nearest in time to source frame ``k`` of the range."""
        return min(len(self.job.mask) - 1, round(k * self.job.fps / self.fps))

    def notes(self) -> list[str]:
        if abs(self.fps - self.job.fps) < 1e-6:
            return []
        return [
            f"the job ran at {self.job.fps:g} fps, the source is {self.fps:g} fps: each source frame takes "
            "the generated frame nearest in time (prepare with --fps source to map them one to one)"
        ]

    def composited(self):
        """The source frames of the range, each with its job frame's GENERATE region blended in (lazily)."""
        source = self.job.source
        frames = media.stream_video(
            source["path"], fps=self.fps, start=source["start"], max_frames=self.count
        )
        current, placed = None, None  # job frames come in order: only the latest one's region is held
        for k, frame in enumerate(frames):  # the source decoded as it is written: one frame held
            if k == 0 and frame.shape[:2] != self.source_hw:
                now, cut = f"{frame.shape[1]}x{frame.shape[0]}", f"{self.source_hw[1]}x{self.source_hw[0]}"
                raise InputError(f"{source['path']}: is {now} now, the job was cut from {cut}")
            if self.job_frame(k) != current:
                current = self.job_frame(k)
                placed = self.place(current)
                if current % 16 == 0:
                    media.release(self.video)  # the run's memory-mapped frames: the pages read let go
            yield frame if placed is None else _blend(frame, *placed)

    def place(self, j: int) -> tuple | None:
        """Job frame ``j``'s generated region in source pixels: ``(rows, cols, pixels, alpha)``."""
        mask = self.job.mask[j]
        if not mask.any():
            return None
        from PIL import Image

        src_h, src_w = self.source_hw
        sy, sx, top, left = media.cover_placement(self.source_hw, mask.shape)  # source px -> job px
        ys, xs = np.nonzero(mask)
        # the region (source px) where the upscaled mask can be above 0: one job pixel beyond the mask
        y0 = max(0, math.floor((ys.min() - 1 + top) / sy))
        y1 = min(src_h, math.ceil((ys.max() + 2 + top) / sy))
        x0 = max(0, math.floor((xs.min() - 1 + left) / sx))
        x1 = min(src_w, math.ceil((xs.max() + 2 + left) / sx))
        extent = (x0 * sx - left, y0 * sy - top, x1 * sx - left, y1 * sy - top)  # the region in job px
        size = (x1 - x0, y1 - y0)
        pixels = Image.fromarray(self.video[j]).transform(size, Image.Transform.EXTENT, extent,
                                                          Image.Resampling.BICUBIC)  # fmt: skip
        alpha = Image.fromarray(mask.astype(np.float32)).transform(size, Image.Transform.EXTENT, extent,
                                                                   Image.Resampling.BILINEAR)  # fmt: skip
        return np.s_[y0:y1], np.s_[x0:x1], np.asarray(pixels), np.clip(np.asarray(alpha), 0.0, 1.0)


def _blend(frame: np.ndarray, rows, cols, pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``frame`` with ``pixels`` blended in over ``rows, cols`` by ``alpha``; where alpha is 0, ``frame``."""
    out = frame.copy()
    region = out[rows, cols]
    a = alpha[..., None]
    mixed = np.rint(region * (1.0 - a) + pixels * a).astype(np.uint8)
    np.copyto(region, mixed, where=a > 0)
    return out


def _write_pngs(folder: Path, frames) -> None:
    for k, frame in enumerate(frames):
        media.write_png(folder / f"frame_{k:06d}.png", frame)
