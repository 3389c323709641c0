"""Long jobs: generate a job's windows in order, each one continuing the output so far, and stitch them.

A job longer than one window stores ``job.windows`` (``geometry.plan_windows``: windows of 4k+1 frames,
the last one as short as it can be). :func:`run_windows` (reached through ``run_job``) does, per window
in order:

1. Conditioning: the job's own video and mask over the window, except its **kept head** - the first
   4j+1 frames it shares with the previous window (``geometry.kept_heads``), which become KEEP with the
   output generated so far as their pixels (the user's own KEEP pixels stay the source). The kept head is
   frame 0 of the window plus whole VAE groups, so no latent step mixes kept and generated frames. The
   mask is ``geometry.window_mask``, the same function ``vacelab audit --window`` audits.
2. Audit of exactly that conditioning (printed with the window's frames; recorded in ``run.json``).
3. One pass of the pipeline (``run.generate``) with seed ``--seed + window index``.
4. ``--color-match``: ``composite.color_match`` measured against the kept pixels around the generated
   ones - for a later window that is the previous window's output in its kept head, so colour cannot
   drift from window to window - and applied to everything generated, kept head included.
5. ``--composite``: the user's KEEP pixels pasted back exactly (``composite.composite``).
6. Stitching: over the frames shared with the previous window the result cross-fades from the previous
   output to this window's (weight of the new window ``(j+1)/(n+1)`` on shared frame ``j`` of ``n``);
   the user's KEEP pixels stay exactly the source. After the shared frames, this window's output.

Resume: each finished window's frames are saved losslessly as ``OUT.partial/windows/NNN.npy`` (then
``NNN.json``: its record and a key over the job and every setting). A rerun with the same job and
settings reuses the finished windows in order and generates from the first missing one; other settings
start over. ``OUT.partial`` is removed once ``OUT`` is complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from .. import media
from ..geometry import kept_heads, window_mask
from ..job import Job
from ..result import Result
from .composite import color_match, composite
from .run import (
    Progress,
    Stopwatch,
    audit_summary,
    flow_shift,
    generate,
    obtain_pipeline,
    run_record,
    write_run,
)
from .settings import RunSettings

PARTIAL_SUFFIX = ".partial"
STATE_FORMAT = 1


@dataclass(frozen=True)
class Window:
    """One window: frames ``start .. stop - 1``; ``head`` kept frames, ``shared`` frames blended."""

    index: int
    start: int
    stop: int
    head: int
    shared: int

    def as_dict(self) -> dict:
        """Where the window, its kept head and its blended frames lie (clip frame numbers, inclusive)."""
        return {
            "index": self.index,
            "frames": [self.start, self.stop - 1],
            "kept_head": [self.start, self.start + self.head - 1] if self.head else None,
            "blended": [self.start, self.start + self.shared - 1] if self.shared else None,
        }

    def describe(self, count: int) -> str:
        text = f"window {self.index + 1}/{count}: frames {self.start}-{self.stop - 1}"
        if self.head:
            text += (
                f", kept head {self.start}-{self.start + self.head - 1} (output so far, KEEP), "
                f"blended {self.start}-{self.start + self.shared - 1}"
            )
        return text


def plan(job: Job) -> list[Window]:
    """The job's windows with their kept heads and shared frames."""
    bounds = [tuple(w) for w in job.windows or [(0, job.mask.shape[0])]]
    heads = kept_heads(bounds)
    shared = [0] + [prev[1] - cur[0] for prev, cur in zip(bounds, bounds[1:], strict=False)]
    return [Window(i, a, b, heads[i], shared[i]) for i, (a, b) in enumerate(bounds)]


def window_job(job: Job, window: Window, stitched: np.ndarray) -> Job:
    """The conditioning of ``window``: kept head = ``stitched`` (output so far) where the job generates."""
    video = np.array(job.video[window.start : window.stop])
    head = slice(0, window.head)
    generated = job.mask[window.start : window.start + window.head, ..., None]
    video[head] = np.where(generated, stitched[window.start : window.start + window.head], video[head])
    return Job(
        task=job.task,
        video=video,
        mask=window_mask(job.mask, job.windows, window.index),
        fps=job.fps,
        refs=job.refs,
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
    )


def crossfade(previous: np.ndarray, new: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """Blend ``n`` shared frames uint8 [n, H, W, 3]: ``new`` weighs ``(j+1)/(n+1)`` on frame ``j``.

    Pixels where ``exact`` (bool [n, H, W]) is True are ``previous`` unchanged (the user's KEEP pixels).
    """
    n = len(previous)
    weight = (np.arange(1, n + 1, dtype=np.float32) / (n + 1))[:, None, None, None]
    mixed = previous.astype(np.float32) * (1 - weight) + new.astype(np.float32) * weight
    return np.where(exact[..., None], previous, np.clip(np.rint(mixed), 0, 255).astype(np.uint8))


def stitch_into(stitched: np.ndarray, frames: np.ndarray, window: Window, exact: np.ndarray) -> None:
    """Put a window's finished ``frames`` into ``stitched`` (cross-faded over its shared frames)."""
    a, n = window.start, window.shared
    if n:
        stitched[a : a + n] = crossfade(stitched[a : a + n], frames[:n], exact[a : a + n])
    stitched[a + n : window.stop] = frames[n:]


def partial_folder(out: Path) -> Path:
    """Where a long run keeps its finished windows until ``out`` is complete: ``OUT.partial``."""
    return out.with_name(out.name + PARTIAL_SUFFIX)


def run_key(job: Job, settings: RunSettings, prompt: str, negative: str) -> str:
    """A digest of everything a window's output depends on: the job's arrays and windows, every setting."""
    digest = hashlib.sha256()
    facts = {
        "format": STATE_FORMAT,
        "settings": settings.as_dict(),
        "prompt": prompt,
        "negative": negative,
        "windows": [list(w) for w in job.windows or []],
        "fps": job.fps,
    }
    digest.update(json.dumps(facts, sort_keys=True, default=str).encode())
    for array in (job.video, job.mask, *job.refs):
        array = np.ascontiguousarray(array)
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(array.data)
    return digest.hexdigest()


class WindowStore:
    """Finished windows under ``OUT.partial/windows/``: ``NNN.npy`` frames, then ``NNN.json`` record."""

    def __init__(self, out: Path, key: str) -> None:
        self.folder = partial_folder(out) / "windows"
        self.key = key

    def _paths(self, index: int) -> tuple[Path, Path]:
        return self.folder / f"{index:03d}.npy", self.folder / f"{index:03d}.json"

    def load(self, window: Window, shape: tuple[int, int, int]) -> tuple[np.ndarray, dict] | None:
        """The saved frames and record of ``window`` if saved under the same key, else None."""
        array_path, record_path = self._paths(window.index)
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            if record.get("key") != self.key:
                return None
            frames = media.load_array(array_path)
        except (OSError, ValueError):
            return None
        if frames.dtype != np.uint8 or frames.shape != (window.stop - window.start, *shape, 3):
            return None
        return frames, record["window"]

    def save(self, window: Window, frames: np.ndarray, record: dict) -> None:
        """Save a finished window (frames first; the record, written last, marks it complete)."""
        array_path, record_path = self._paths(window.index)
        media.save_array(array_path, frames)
        media.write_text(record_path, json.dumps({"key": self.key, "window": record}, default=str))

    def drop_from(self, index: int) -> int:
        """Delete saved windows from ``index`` on (stale once an earlier window is regenerated)."""
        dropped = 0
        for path in sorted(self.folder.glob("[0-9][0-9][0-9].json")):
            if int(path.stem) >= index:
                path.unlink(missing_ok=True)
                path.with_suffix(".npy").unlink(missing_ok=True)
                dropped += 1
        return dropped


def run_windows(
    job: Job,
    out: Path,
    settings: RunSettings,
    *,
    prompt: str,
    negative: str,
    pipeline=None,
    progress: Progress,
    clock: Stopwatch,
    started: datetime,
    run_start: float,
) -> Result:
    """Generate a long job window by window and write one results folder ``out`` (called by ``run_job``)."""
    windows = plan(job)
    count = len(windows)
    frames, height, width = job.mask.shape
    _log(f"long job: {frames} frames in {count} windows at {job.fps:g} fps")
    progress("audit", 0, count)
    audits = []
    with clock("audit"):
        for window in windows:
            _log(window.describe(count))
            audits.append(
                audit_summary(_part(job, window, window_mask(job.mask, job.windows, window.index)), settings)
            )
            progress("audit", window.index + 1, count)
    with clock("resume"):  # hashing the job: what a saved window must match
        store = WindowStore(out, run_key(job, settings, prompt, negative))
    first = _part(job, windows[0], job.mask[: windows[0].stop])  # the longest window
    pipe, memory = obtain_pipeline(first, settings, pipeline, clock=clock, report=progress)
    shift = flow_shift(settings, height, width)
    device = str(pipe._execution_device)
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
    exact = ~job.mask if settings.composite else np.zeros_like(job.mask)
    stitched = np.zeros_like(job.video)
    records, regenerating = [], False
    for window in windows:
        saved = None if regenerating else store.load(window, (height, width))
        if saved is not None:
            output, record = saved
            record["resumed"] = True
            _log(f"window {window.index + 1}/{count}: reused from {store.folder}")
        else:
            if not regenerating:
                regenerating = True
                if store.drop_from(window.index):
                    _log(
                        f"note: discarding saved windows from {window.index + 1} on (settings or job differ)"
                    )
            output, record = _generate_window(
                pipe, job, window, stitched, settings, prompt=prompt, negative=negative, shift=shift,
                clock=clock, progress=progress, count=count,
            )  # fmt: skip
            record["audit"] = audits[window.index]
            store.save(window, output, record)
            _log(f"window {window.index + 1}/{count}: done in {record['timings']['total']:.1f} s")
        with clock("stitch"):
            stitch_into(stitched, output, window, exact)
        records.append(record)
    colour = [r["color_match"] for r in records] if settings.color_match else None
    run = run_record(
        job, settings, pipe, prompt=prompt, negative=negative, shift=shift, colour=colour,
        audit=_audit_total(audits), memory=memory, started=started,
    )  # fmt: skip
    run["windows"] = records
    result = write_run(out, job, stitched, run, clock=clock, run_start=run_start, report=progress)
    shutil.rmtree(partial_folder(out), ignore_errors=True)
    return result


def _generate_window(
    pipe, job, window, stitched, settings, *, prompt, negative, shift, clock, progress, count
) -> tuple[np.ndarray, dict]:
    """Generate one window, colour-match and composite it; return its frames and its run.json record."""
    own = Stopwatch()
    start = time.perf_counter()
    with own("inputs"):
        conditioning = window_job(job, window, stitched)
    label = f"denoise {window.index + 1}/{count}"

    def report(stage, done, total):
        progress(label if stage == "denoise" else stage, done, total)

    seed = settings.seed + window.index
    video = generate(
        pipe, conditioning, settings, prompt=prompt, negative=negative, shift=shift, seed=seed, clock=own,
        report=report,
    )  # fmt: skip
    user_mask = job.mask[window.start : window.stop]
    with own("composite"):
        colour = None
        if settings.color_match:
            video, colour = color_match(video, conditioning.video, conditioning.mask, apply_to=user_mask)
        if settings.composite:
            video = composite(video, job.video[window.start : window.stop], user_mask, settings.feather)
    own.seconds["total"] = time.perf_counter() - start
    for stage, seconds in own.seconds.items():
        if stage != "total":
            clock.seconds[stage] = clock.seconds.get(stage, 0.0) + seconds
    record = {
        **window.as_dict(),
        "seed": seed,
        "color_match": colour,
        "timings": {k: round(v, 4) for k, v in own.seconds.items()},
        "resumed": False,
    }
    return video, record


def _part(job: Job, window: Window, mask: np.ndarray) -> Job:
    """The job's frames of ``window`` with ``mask`` (what the audit and the memory estimate read)."""
    video = job.video[window.start : window.stop]
    return Job(task=job.task, video=video, mask=mask, fps=job.fps, refs=job.refs, path=job.path)


def _audit_total(audits: list[dict]) -> dict:
    """All windows' findings (each tagged with its window) and their counts, for run.json's ``audit``."""
    findings = [{**f, "window": i} for i, audit in enumerate(audits) for f in audit["findings"]]
    summary: dict[str, int] = {}
    for audit in audits:
        for key, value in (audit.get("summary") or {}).items():
            summary[key] = summary.get(key, 0) + value
    return {"findings": findings, "summary": summary, "windows": len(audits)}


def _log(line: str) -> None:
    print(line, file=sys.stderr)


__all__ = ["Window", "crossfade", "partial_folder", "plan", "run_windows", "window_job"]
