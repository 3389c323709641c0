"""The job folder: what ``vacelab prepare`` writes and every other stage reads.

Layout of ``JOB/``::

    job.json             task, parameters, geometry, references, suggested prompts, windows, mask area
    src_video.mp4        conditioning video (H.264, for the official scripts and ComfyUI)
    src_mask.mp4         mask video, 255 = GENERATE (H.264: not exactly binary, never read back)
    src_ref_images/      reference images, PNG, in the order given (ref_00.png, ref_01.png, ...)
    original.mp4         the source at job size before any fill, for viewing and comparison
    arrays/video.npy     LOSSLESS conditioning video, uint8 [F, H, W, 3]  <- what vacelab reads back
    arrays/mask.npy      LOSSLESS mask, bit-packed bool [F, H, W], True = GENERATE
    preview.gif          source | mask overlay, side by side

A job folder is built in a hidden temporary folder beside its target and renamed into place when
complete, so a crash never leaves a half-written job under the final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import media
from .errors import InputError
from .geometry import Geometry, Window, WindowPlan

JOB_FORMAT = 1
TASKS = ("inpaint", "remove", "outpaint", "firstframe", "lastframe", "firstlast", "keyframes", "extend")


@dataclass
class Job:
    """One VACE task, ready for the model. ``mask`` True = GENERATE; ``video`` is gray (127) there."""

    task: str
    video: np.ndarray
    mask: np.ndarray
    fps: float
    refs: list[np.ndarray] = field(default_factory=list)
    original: np.ndarray | None = None  # the source at job size before filling; read lazily from a folder
    params: dict = field(default_factory=dict)
    prompt: str = ""
    negative_prompt: str = ""
    windows: list[tuple[int, int]] | None = None
    notes: list[str] = field(default_factory=list)
    path: Path | None = None

    def source_frames(self) -> np.ndarray:
        """The source as the user sees it (before gray fill): ``original`` if known, else ``video``."""
        if self.original is None and self.path is not None and (self.path / "original.mp4").is_file():
            self.original, _ = media.read_video(self.path / "original.mp4")
        return self.video if self.original is None else self.original

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

    def manifest(self) -> dict:
        """The content of ``job.json``."""
        area = self.mask.reshape(self.mask.shape[0], -1).mean(axis=1)
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
        }


def check_new_folder(out: str | os.PathLike, inputs: list[str | os.PathLike] = ()) -> Path:
    """Refuse an output folder that exists (unless empty), that holds or is one of the inputs, or that
    lies inside an input folder (a job folder, an image folder: inputs are never changed)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("is an existing file", field="out", value=out)
    if out.is_dir() and any(out.iterdir()):
        raise InputError("folder exists and is not empty (nothing is overwritten)", field="out", value=out)
    resolved = out.resolve()
    for item in inputs:
        item = Path(item).resolve()
        if resolved == item or resolved in item.parents:
            raise InputError(f"is, or holds, the input {item}", field="out", value=out)
        if item.is_dir() and item in resolved.parents:
            raise InputError(f"lies inside the input folder {item}", field="out", value=out)
    return out


def write_folder(out: str | os.PathLike, fill) -> Path:
    """Build a folder atomically: ``fill(tmp_dir)`` writes into a hidden sibling that is then renamed."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        fill(tmp)
        os.chmod(tmp, media.default_mode(directory=True))
        if out.is_dir():
            out.rmdir()  # only an empty folder reaches here (check_new_folder)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def save_job(job: Job, out: str | os.PathLike, *, preview: bool = True) -> Path:
    """Write ``job`` as a job folder at ``out`` (atomically) and return its path."""

    def fill(folder: Path) -> None:
        (folder / "arrays").mkdir()
        media.save_array(folder / "arrays" / "video.npy", job.video)
        media.save_mask(folder / "arrays" / "mask.npy", job.mask)
        media.write_mp4(folder / "src_video.mp4", job.video, job.fps)
        media.write_mp4(folder / "src_mask.mp4", job.mask, job.fps)
        if job.original is not None:
            # a viewing copy: the fastest x264 preset
            media.write_mp4(folder / "original.mp4", job.original, job.fps, preset="ultrafast")
        (folder / "src_ref_images").mkdir()
        for i, ref in enumerate(job.refs):
            media.write_png(folder / "src_ref_images" / f"ref_{i:02d}.png", ref)
        if preview:
            from .render import preview_frames

            # every other frame at half the rate: same duration, half the size and time
            media.write_gif(folder / "preview.gif", preview_frames(job, every=2), job.fps / 2, max_width=640)
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
    if manifest.get("vacelab_job") != JOB_FORMAT:
        raise InputError(f"{manifest_path}: not a vacelab job (format {manifest.get('vacelab_job')!r})")
    return manifest


def load_job_arrays(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The exact arrays of a job folder: video uint8 [F, H, W, 3] (memory-mapped) and mask bool [F, H, W]."""
    path = Path(path)
    try:
        video = media.load_array(path / "arrays" / "video.npy", mmap=True)
        return video, media.load_mask(path / "arrays" / "mask.npy")
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: job arrays missing or damaged ({exc})") from None


def load_job(path: str | os.PathLike) -> Job:
    """Read a job folder written by ``vacelab prepare``: exact arrays, references in order."""
    path = Path(path)
    manifest = read_manifest(path)
    video, mask = load_job_arrays(path)
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
    )
