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
from .folders import write_folder

RUN_JSON = "run.json"
VIDEO_ARRAY = "arrays/video.npy"


@dataclass
class Result:
    """A finished run: ``video`` uint8 [F, H, W, 3], the ``run.json`` content and the folder."""

    video: np.ndarray
    run: dict
    path: Path | None = None

    @property
    def job_path(self) -> Path | None:
        """The job folder the run generated, resolved (``run.json`` names it relative to the results
        folder; an older, absolute record reads the same)."""
        recorded = (self.run.get("job") or {}).get("path")
        if recorded is None:
            return None
        return (self.path / recorded).resolve() if self.path is not None else Path(recorded)


# compare.mp4 is a viewing aid next to the exact outputs (out_video.mp4, arrays/video.npy): x264's fastest
# preset at its default quality encodes its three panels about 2.5x faster than out_video.mp4's settings,
# in a smaller file (measured in docs/performance.md).
COMPARE_PRESET, COMPARE_CRF = "ultrafast", 23


def _compare_frames(source, mask: np.ndarray, video):
    """source | mask | output, one frame at a time (the whole side-by-side clip is never held);
    ``source`` is any iterable of frames, ``video`` anything indexed by frame ranges."""
    from .render import mask_frames, side_by_side

    for f, frame in zip(range(len(video)), source, strict=True):  # a short source is a fault, not a cut
        one = np.s_[f : f + 1]
        yield side_by_side(frame[None], mask_frames(mask[one]), video[one])[0]


def write_result(
    out: str | os.PathLike,
    video: np.ndarray | str | os.PathLike,
    run: dict,
    *,
    fps: float,
    source,
    mask: np.ndarray,
    finish=None,
) -> Path:
    """Write a results folder atomically. ``finish(run)`` may add last facts (timings) before run.json.

    ``video``: the output frames, or the path of a ``.npy`` holding them (a run's frames written as they
    were finished: moved into the folder, then read frame by frame, never whole). ``source``: the source
    frames, any iterable. The four media files are written concurrently (x264, Pillow and file writes
    release the GIL).
    """
    from concurrent.futures import ThreadPoolExecutor

    def fill(folder: Path) -> None:
        (folder / "arrays").mkdir()
        frames = video
        if not isinstance(video, np.ndarray):
            os.replace(video, folder / VIDEO_ARRAY)
            frames = media.FrameReader(folder / VIDEO_ARRAY)
        compare = _compare_frames(source, mask, frames)
        with ThreadPoolExecutor(4) as pool:
            writes = [
                pool.submit(
                    media.write_mp4,
                    folder / "compare.mp4",
                    compare,
                    fps,
                    crf=COMPARE_CRF,
                    preset=COMPARE_PRESET,
                ),
                pool.submit(media.write_mp4, folder / "out_video.mp4", iter(frames), fps),
                pool.submit(media.write_gif, folder / "out_video.gif", frames, fps),
            ]
            if frames is video:
                writes.append(pool.submit(media.save_array, folder / VIDEO_ARRAY, video))
            for write in writes:
                write.result()  # the first failure is raised (after every write has ended)
        if finish is not None:
            finish(run)
        media.write_text(folder / RUN_JSON, json.dumps(run, indent=2, default=str))

    return write_folder(out, fill)


def load_result(path: str | os.PathLike, *, mmap: bool = False) -> Result:
    """Read a results folder written by ``vacelab run``: the exact output frames (memory-mapped with
    ``mmap``) and ``run.json``."""
    path = Path(path)
    run_path = path / RUN_JSON
    if not run_path.is_file():
        raise InputError(f"{path}: not a vacelab results folder (no {RUN_JSON})")
    try:
        run = json.loads(run_path.read_text(encoding="utf-8"))
        video = media.load_array(path / VIDEO_ARRAY, mmap=mmap)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: results damaged ({exc})") from None
    return Result(video=video, run=run, path=path)
