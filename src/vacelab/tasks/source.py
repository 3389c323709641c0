"""Inputs every task shares: the source clip at job size and length, reference images, coordinates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import media
from ..errors import InputError
from ..geometry import DEFAULT_FRAMES, VAE_STRIDE_S, plan_windows, target_size
from .options import Options, frame_count, window_settings

FILL_GRAY = 127  # neutral gray in uint8 (127.5 is 0 in [-1, 1]; 127 is -0.004, see docs/prepare.md)
DEFAULT_FPS = 16.0  # Wan's training rate: the job rate of generation tasks unless --fps says otherwise
FOOTAGE_TASKS = ("inpaint", "remove", "outpaint")  # edits of footage: frame for frame at the clip's rate


@dataclass
class Clip:
    """The source decoded at job size: ``frames`` uint8 [F, H, W, 3], its fps and the source's own size.

    ``source`` is what ``job.json`` records of the source (``Job.source``): its absolute path, own size and
    rate, and where the job starts in it — what ``vacelab export`` needs to put a run back into it.
    """

    frames: np.ndarray
    fps: float
    source_hw: tuple[int, int]
    notes: list[str]
    source: dict | None = None


def probe(path: str | Path) -> tuple[tuple[int, int], float | None]:
    """((height, width), frame rate) of a video file, an image or the first image of a folder, without
    decoding it all; the rate is ``None`` for images (they have none)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return media.read_image(media.list_image_folder(path)[0]).shape[:2], None
    if not path.is_file():  # a FIFO would block the open below for ever
        raise InputError(f"{path}: not a regular file or folder")
    if path.suffix.lower() in media.IMAGE_SUFFIXES:
        return media.read_image(path).shape[:2], None
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: holds no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if not ctx.height or not ctx.width:
                raise InputError(f"{path}: video stream has no frame size")
            rate = stream.average_rate or stream.guessed_rate
            return (ctx.height, ctx.width), float(rate) if rate else None
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: not a readable video ({exc.strerror or exc.__class__.__name__})") from None


def probe_hw(path: str | Path) -> tuple[int, int]:
    """(height, width) of a video file, an image or the first image of a folder (:func:`probe`)."""
    return probe(path)[0]


def job_fps(task: str, opts: Options) -> float:
    """The job's frame rate: ``--fps`` as given, ``source`` -> the clip's own rate; not given -> the clip's
    own for edits of footage (:data:`FOOTAGE_TASKS`), else Wan's training rate (16)."""
    fps = opts.fps
    if fps is None:
        fps = "source" if task in FOOTAGE_TASKS and opts.video else DEFAULT_FPS
    if fps != "source":
        return float(fps)
    if not opts.video:
        raise InputError("takes the rate of a source video, and none is given", field="fps", value=fps)
    return probe(opts.video)[1] or DEFAULT_FPS  # an image folder has no rate of its own


def job_size(opts: Options, source_hw: tuple[int, int]) -> tuple[int, int]:
    """The job's (height, width) from ``--size`` and the source's orientation."""
    try:
        return target_size(str(opts.size), source_hw)
    except ValueError as exc:
        raise InputError(str(exc), field="size", value=opts.size) from None


def largest_valid(frames: int) -> int:
    """The largest 4n+1 not above ``frames``."""
    return (frames - 1) // 4 * 4 + 1


def read_clip(path: str | Path, opts: Options, size: tuple[int, int], source_hw: tuple[int, int]) -> Clip:
    """Decode ``--video`` at job ``size``, ``--fps`` and ``--start``, cut to the job's 4n+1 length.

    ``--frames`` not given: 81, or the largest 4n+1 the clip holds (with a note). Given explicitly and
    longer than the clip: an error. ``all``: the whole clip, cut to 4n+1 when it fits one window;
    longer, every frame (a long job's windows are 4n+1 each, the whole clip need not be).
    """
    requested = frame_count(opts.frames)
    limit = None if requested == "all" else (requested or DEFAULT_FRAMES)
    damage: list[str] = []
    video, fps = media.read_video(
        path, size=size, fps=float(opts.fps), start=float(opts.start), max_frames=limit, damage=damage
    )
    notes = [f"warning: {line}" for line in damage]
    available = video.shape[0]
    if isinstance(requested, int) and available < requested:
        raise InputError(
            f"the video {path} holds {available} frames at {opts.fps:g} fps from {opts.start:g} s; "
            f"use {largest_valid(available)} or fewer" + "".join(f" ({line})" for line in damage),
            field="frames",
            value=requested,
        )
    frames = largest_valid(available)
    if requested == "all" and available > window_settings(opts)[0]:
        frames = available
    if requested is None and available < DEFAULT_FRAMES:
        notes.append(f"the clip holds {available} frames at {opts.fps:g} fps: using {frames} (largest 4n+1)")
    elif requested == "all" and frames < available:
        notes.append(f"--frames all: using {frames} of {available} frames (largest 4n+1)")
    source = {
        "path": str(Path(path).resolve()),
        "width": int(source_hw[1]),
        "height": int(source_hw[0]),
        "fps": probe(path)[1],
        "start": float(opts.start),
    }
    return Clip(np.ascontiguousarray(video[:frames]), fps, tuple(source_hw), notes, source)


def windows_for(opts: Options, frames: int) -> list[tuple[int, int]] | None:
    """Validated long-job windows (None for a job that fits one window)."""
    window, overlap = window_settings(opts)
    try:
        windows = plan_windows(frames, window, overlap)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return windows if len(windows) > 1 else None


def read_refs(paths: list, size: tuple[int, int]) -> tuple[list[np.ndarray], list[str]]:
    """Read ``--ref`` images in the order given, at their own size; notes for tiny or ill-fitting ones."""
    refs, notes = [], []
    for i, path in enumerate(paths):
        image = media.read_image(path)
        refs.append(image)
        notes.extend(f"--ref {path} (reference {i}): {problem}" for problem in ref_problems(image, size))
    return refs, notes


def ref_problems(image: np.ndarray, size: tuple[int, int]) -> list[str]:
    """How a reference will fare when the pipeline fits it onto the white job canvas."""
    height, width = image.shape[:2]
    scale = min(size[0] / height, size[1] / width)
    covered = (height * scale) * (width * scale) / (size[0] * size[1])
    problems = []
    if scale >= 4:
        problems.append(
            f"tiny ({width}x{height}): upscaled {scale:.1f}x to fit {size[1]}x{size[0]}, it will be blurry"
        )
    if covered < 0.4:
        problems.append(
            f"aspect {width / height:.2f} vs the job's {size[1] / size[0]:.2f}: fitted, it covers only "
            f"{covered:.0%} of the canvas (the rest is white)"
        )
    return problems


def mood_crops(frames: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` loose crops of the source (sides and corners, at spread-out times) as mood references."""
    if count < 0:
        raise InputError("must be 0 or more", field="auto_refs", value=count)
    f, h, w = frames.shape[:3]
    # (top, left, bottom, right) as fractions: left, right, top, bottom bands, then the four corners
    regions = [
        (0, 0, 1, 0.5), (0, 0.5, 1, 1), (0, 0, 0.5, 1), (0.5, 0, 1, 1),
        (0, 0, 0.6, 0.6), (0, 0.4, 0.6, 1), (0.4, 0, 1, 0.6), (0.4, 0.4, 1, 1),
    ]  # fmt: skip
    crops = []
    for i in range(count):
        top, left, bottom, right = regions[i % len(regions)]
        frame = frames[min(f - 1, int((i + 0.5) * f / count))]
        crop = frame[int(top * h) : int(bottom * h), int(left * w) : int(right * w)]
        crops.append(np.ascontiguousarray(crop))
    return crops


def to_job_coords(
    xy: np.ndarray, opts: Options, source_hw: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """Map pixel coordinates [..., 2] (x, y) given with ``--coords source`` into the job's pixel space."""
    xy = np.asarray(xy, np.float64)
    if opts.coords == "job":
        return xy
    if opts.coords != "source":
        raise InputError("choose job or source", field="coords", value=repr(opts.coords))
    scale_y, scale_x, top, left = media.cover_placement(source_hw, size)
    return xy * np.array([scale_x, scale_y]) - np.array([left, top])


def check_block_size(px: int, option: str) -> list[str]:
    """A note when a strip or border is not whole 8x8 VAE blocks."""
    if px % VAE_STRIDE_S:
        return [
            f"{option} {px}: not a multiple of {VAE_STRIDE_S}, so the VAE sees a partly kept block "
            "at its edge"
        ]
    return []
