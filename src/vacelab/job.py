"""The job folder: what ``vacelab prepare`` writes and every other stage reads.

Layout of ``JOB/``::

    job.json             task, parameters, geometry, references, suggested prompts, windows, mask area
    src_video.mp4        conditioning video (H.264, for the official scripts and ComfyUI)
    src_mask.mp4         mask video, 255 = GENERATE (H.264: not exactly binary, never read back)
    src_ref_images/      reference images, PNG, in the order given (ref_00.png, ref_01.png, ...)
    original.mp4         the source at job size before any fill, for viewing and comparison
    arrays/video.npy     LOSSLESS conditioning video, uint8 [F, H, W, 3]  <- what vacelab reads back
    arrays/mask.npy      LOSSLESS mask, bit-packed bool [F, H, W], True = GENERATE
    preview.gif          source | mask overlay, side by side (control: source | control | mask)

A job folder is built in a hidden temporary folder beside its target and renamed into place when
complete, so a crash never leaves a half-written job under the final name.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import media
from .errors import InputError
from .folders import write_folder
from .geometry import Geometry, Window, WindowPlan

JOB_FORMAT = 1
TASKS = ("inpaint", "remove", "outpaint", "firstframe", "lastframe", "firstlast", "keyframes", "extend")
TASKS += ("reference", "control")


@dataclass
class Job:
    """One VACE task, ready for the model. ``mask`` True = GENERATE; ``video`` is gray (127) there."""

    task: str
    video: np.ndarray
    mask: np.ndarray  # or a media.PackedMask (inpaint/remove; load_job(packed_mask=True)), indexed alike
    fps: float
    refs: list[np.ndarray] = field(default_factory=list)
    original: np.ndarray | None = None  # the source at job size before filling; read lazily from a folder
    params: dict = field(default_factory=dict)
    prompt: str = ""
    negative_prompt: str = ""
    windows: list[tuple[int, int]] | None = None
    notes: list[str] = field(default_factory=list)
    path: Path | None = None
    source: dict | None = None  # the source video the job was cut from (tasks.source.Clip.source)

    def source_frames(self) -> np.ndarray:
        """The source as the user sees it (before gray fill): ``original`` if known, else ``video``."""
        if self.original is None and self.path is not None and (self.path / "original.mp4").is_file():
            self.original, _ = media.read_video(self.path / "original.mp4")
        return self.video if self.original is None else self.original

    def iter_source_frames(self):
        """:meth:`source_frames` one frame at a time (``original.mp4`` decoded as it is read)."""
        if self.original is None and self.path is not None and (self.path / "original.mp4").is_file():
            return media.iter_video(self.path / "original.mp4")
        return self._iter_frames(self.source_frames())

    @staticmethod
    def _iter_frames(frames: np.ndarray):
        for start in range(0, len(frames), 16):  # a memory-mapped clip's pages are let go as it is read
            yield from frames[start : start + 16]
            media.release(frames)

    @property
    def geometry(self) -> Geometry:
        frames, height, width = self.mask.shape
        return Geometry(frames=frames, height=height, width=width, ref_frames=len(self.refs))

    @property
    def plan(self) -> WindowPlan:
        """The windows the job is generated in (one for a job that fits one window)."""
        return WindowPlan.of(self.windows, self.mask.shape[0])

    def window(self, index: int | None) -> Window:
        """Window ``index`` of :attr:`plan` (``None``: the first)."""
        return self.plan.window(index)

    def generate_share(self) -> float:
        """The share of the clip's pixels to GENERATE."""
        return float(self.mask.mean())  # a PackedMask counts its bits

    def manifest(self) -> dict:
        """The content of ``job.json``."""
        area = media.mask_counts(self.mask) / (self.geometry.height * self.geometry.width)
        return {
            "vacelab_job": JOB_FORMAT,
            "task": self.task,
            "geometry": {**self.geometry.as_dict(), "fps": self.fps},
            "params": self.params,
            "refs": [f"src_ref_images/ref_{i:02d}.png" for i in range(len(self.refs))],
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "windows": [list(w) for w in self.windows] if self.windows else None,
            "mask_area": [round(float(a), 5) for a in area],
            "notes": self.notes,
            **({"source": self.source} if self.source else {}),
        }


def save_job(job: Job, out: str | os.PathLike, *, preview: bool = True) -> Path:
    """Write ``job`` as a job folder at ``out`` (atomically) and return its path."""

    def fill(folder: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        (folder / "arrays").mkdir()
        (folder / "src_ref_images").mkdir()
        media.save_array(folder / "arrays" / "video.npy", job.video)
        media.save_mask(folder / "arrays" / "mask.npy", job.mask)
        for i, ref in enumerate(job.refs):
            media.write_png(folder / "src_ref_images" / f"ref_{i:02d}.png", ref)
        with ThreadPoolExecutor(3) as pool:  # the x264 encodes at once (PyAV releases the GIL while encoding)
            writes = [
                pool.submit(media.write_mp4, folder / "src_video.mp4", job.video, job.fps),
                pool.submit(media.write_mp4, folder / "src_mask.mp4", job.mask, job.fps),
            ]
            if job.original is not None:  # a viewing copy: the fastest x264 preset
                writes.append(
                    pool.submit(
                        media.write_mp4, folder / "original.mp4", job.original, job.fps, preset="ultrafast"
                    )
                )
            if preview:
                from .render import PreviewFrames

                # every other frame at half the rate: same duration, half the size and time
                media.write_gif(
                    folder / "preview.gif", PreviewFrames(job, every=2), job.fps / 2, max_width=640
                )
            for write in writes:
                write.result()  # the first failure is raised (after every write has ended)
        media.write_text(folder / "job.json", json.dumps(job.manifest(), indent=2))

    job.path = write_folder(out, fill)
    return job.path


def read_manifest(path: str | os.PathLike) -> dict:
    """The validated ``job.json`` of a job folder (cheap: no arrays, no images)."""
    manifest_path = Path(path) / "job.json"
    if not manifest_path.is_file():
        raise InputError(f"{path}: not a job folder (no job.json)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{manifest_path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(manifest, dict) or manifest.get("vacelab_job") != JOB_FORMAT:
        found = manifest.get("vacelab_job") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(f"{manifest_path}: not a vacelab job (format {found!r})")
    problem = manifest_problem(manifest)
    if problem:
        raise InputError(f"{manifest_path}: damaged: {problem}")
    return manifest


def manifest_problem(manifest: dict) -> str | None:
    """What makes a ``job.json`` unusable (a hand edit, a damaged file), or ``None``."""
    geometry = manifest.get("geometry")
    if manifest.get("task") not in TASKS:
        return f"task {manifest.get('task')!r} is not one of {', '.join(TASKS)}"
    if not isinstance(geometry, dict):
        return "geometry missing"
    for key in ("frames", "height", "width"):
        if not _whole(geometry.get(key)) or geometry[key] < 1:
            return f"geometry.{key} {geometry.get(key)!r} is not a whole number >= 1"
    fps = geometry.get("fps")
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
        return f"geometry.fps {fps!r} is not a number > 0"
    windows = manifest.get("windows")
    if windows and not _covering_windows(windows, geometry["frames"]):
        return f"windows {windows!r} are not [start, stop] pairs covering the clip"
    for key, kind in (
        ("refs", list),
        ("params", dict),
        ("notes", list),
        ("prompt", str),
        ("negative_prompt", str),
    ):
        if key in manifest and not isinstance(manifest[key], kind):
            return f"{key} is not a {kind.__name__}"
    if not all(isinstance(ref, str) for ref in manifest.get("refs", [])):
        return "refs are not file names"
    return None


def _covering_windows(windows, frames: int) -> bool:
    """``windows`` are ``[start, stop]`` pairs of whole frame numbers from frame 0 to ``frames``."""
    pairs = isinstance(windows, list) and all(
        isinstance(w, list) and len(w) == 2 and all(_whole(v) for v in w) and w[0] < w[1] for w in windows
    )
    return pairs and windows[0][0] == 0 and windows[-1][1] == frames


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_job_arrays(
    path: str | os.PathLike, manifest: dict | None = None, *, packed_mask: bool = False
) -> tuple[np.ndarray, np.ndarray | media.PackedMask]:
    """The exact arrays of a job folder: video uint8 [F, H, W, 3] (memory-mapped) and mask bool [F, H, W]
    (``packed_mask``: a :class:`~vacelab.media.PackedMask`), checked against each other and against the
    geometry of ``job.json`` (``manifest``: already read)."""
    path = Path(path)
    manifest = read_manifest(path) if manifest is None else manifest
    try:
        video = media.load_array(path / "arrays" / "video.npy", mmap=True)
        mask = media.load_mask(path / "arrays" / "mask.npy", packed=packed_mask)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: job arrays missing or damaged ({exc})") from None
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise InputError(
            f"{path}: arrays/video.npy is {video.dtype} {list(video.shape)}, "
            "not uint8 [frames, height, width, 3]"
        )
    if mask.shape != video.shape[:3]:
        raise InputError(f"{path}: arrays/mask.npy is {list(mask.shape)}, the video {list(video.shape[:3])}")
    geometry = manifest["geometry"]
    recorded = [geometry["frames"], geometry["height"], geometry["width"]]
    if recorded != list(mask.shape):
        arrays = list(mask.shape)
        raise InputError(f"{path}: job.json says {recorded} (frames, height, width), the arrays {arrays}")
    return video, mask


def load_job(path: str | os.PathLike, *, packed_mask: bool = False) -> Job:
    """Read a job folder written by ``vacelab prepare``: exact arrays, references in order.

    ``packed_mask``: ``job.mask`` is a :class:`~vacelab.media.PackedMask`, unpacked only where indexed (a
    run reads it window by window and frame by frame; 1/8 of the bytes of the unpacked clip)."""
    path = Path(path)
    manifest = read_manifest(path)
    video, mask = load_job_arrays(path, manifest, packed_mask=packed_mask)
    refs = [media.read_image(path / ref) for ref in manifest.get("refs", [])]
    windows = manifest.get("windows")
    return Job(
        task=manifest["task"],
        video=video,
        mask=mask,
        fps=float(manifest["geometry"]["fps"]),
        refs=refs,
        params=manifest.get("params", {}),
        prompt=manifest.get("prompt", ""),
        negative_prompt=manifest.get("negative_prompt", ""),
        windows=[tuple(w) for w in windows] if windows else None,
        notes=manifest.get("notes", []),
        path=path,
        source=manifest.get("source"),
    )
