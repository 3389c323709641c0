"""The results folder of ``vacelab run`` and :func:`load_result` to read it back.

Layout of ``OUT/``::

    out_video.mp4      the output (H.264)
    out_video.gif      the output, small, for quick viewing
    compare.mp4        source | mask | output, side by side
    arrays/video.npy   LOSSLESS output frames, uint8 [F, H, W, 3]   <- what load_result reads
    run.json           every setting, seed, model and revision, versions, timings, peak memory, audit

The folder is built in a hidden temporary sibling and renamed into place; ``run.json`` is written last,
so a folder holding ``run.json`` is complete (``vacelab batch`` relies on it to resume).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import media
from .errors import InputError
from .job import write_folder

RUN_JSON = "run.json"
VIDEO_ARRAY = "arrays/video.npy"


@dataclass
class Result:
    """A finished run: ``video`` uint8 [F, H, W, 3], the ``run.json`` content and the folder."""

    video: np.ndarray
    run: dict
    path: Path | None = None


def write_result(
    out: str | os.PathLike,
    video: np.ndarray,
    run: dict,
    *,
    fps: float,
    source: np.ndarray,
    mask: np.ndarray,
    finish=None,
) -> Path:
    """Write a results folder atomically. ``finish(run)`` may add last facts (timings) before run.json."""
    from .render import mask_frames, side_by_side

    def fill(folder: Path) -> None:
        (folder / "arrays").mkdir()
        media.save_array(folder / VIDEO_ARRAY, video)
        media.write_mp4(folder / "out_video.mp4", video, fps)
        media.write_gif(folder / "out_video.gif", video, fps)
        media.write_mp4(folder / "compare.mp4", side_by_side(source, mask_frames(mask), video), fps)
        if finish is not None:
            finish(run)
        media.write_text(folder / RUN_JSON, json.dumps(run, indent=2, default=str))

    return write_folder(out, fill)


def load_result(path: str | os.PathLike) -> Result:
    """Read a results folder written by ``vacelab run``: the exact output frames and ``run.json``."""
    path = Path(path)
    run_path = path / RUN_JSON
    if not run_path.is_file():
        raise InputError(f"{path}: not a vacelab results folder (no {RUN_JSON})")
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
        video = media.load_array(path / VIDEO_ARRAY)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: results damaged ({exc})") from None
    return Result(video=video, run=run, path=path)
