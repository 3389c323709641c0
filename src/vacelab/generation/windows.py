"""Generation window by window: every job runs here, a job that fits one window as its only window.

A job's windows are ``job.plan`` (``geometry.WindowPlan``: windows of 4n+1 frames, the last one as short
as it can be). :func:`generate_windows` does, per window in order:

1. Conditioning: the job's own video and mask over the window, except its **kept head** - the first
   4j+1 frames it shares with the previous window (``Window.head``), which become KEEP with the output
   generated so far as their pixels (the user's own KEEP pixels stay the source). The kept head is frame
   0 of the window plus whole VAE groups, so no latent step mixes kept and generated frames. The mask is
   ``Window.mask``, the same one ``vacelab audit --window`` audits.
2. One pass of the pipeline (``passes.generate``) with seed ``seed + window index``.
3. ``color_match``: ``composite.color_match`` measured against the kept pixels around the generated
   ones - for a later window that is the previous window's output in its kept head, so colour cannot
   drift from window to window - and applied to everything generated, kept head included.
4. ``composite``: the user's KEEP pixels pasted back exactly (``composite.composite``).
5. Stitching: over the frames shared with the previous window the result cross-fades from the previous
   output to this window's (weight of the new window ``(j+1)/(n+1)`` on shared frame ``j`` of ``n``);
   the user's KEEP pixels stay exactly the source. After the shared frames, this window's output.

Resume (long jobs): each finished window's frames are saved losslessly as ``OUT.partial/windows/NNN.npy``
(then ``NNN.json``: its record and a fingerprint of the job and every setting). A rerun with the same job
and settings reuses the finished windows in order and generates from the first missing one; other
settings start over. ``OUT.partial`` is removed once ``OUT`` is complete.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from .. import media
from ..colors import match_colors_record
from ..fingerprint import fingerprint
from ..geometry import Window
from ..job import Job
from .composite import color_match, composite
from .context import RunContext, Stopwatch
from .passes import generate

PARTIAL_SUFFIX = ".partial"
STATE_FORMAT = 2

log = logging.getLogger("vacelab")


def window_job(job: Job, window: Window, head_frames: np.ndarray) -> Job:
    """The conditioning of ``window``: its kept head = ``head_frames`` (the output so far over the
    window's first ``window.head`` frames) where the job generates."""
    video = np.array(job.video[window.frames])
    head = slice(0, window.head)
    generated = job.mask[window.start : window.start + window.head, ..., None]
    video[head] = np.where(generated, head_frames[: window.head], video[head])
    return Job(
        task=job.task,
        video=video,
        mask=window.mask(job.mask),
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


def stitch(tail: np.ndarray, frames: np.ndarray, window: Window, exact: np.ndarray) -> np.ndarray:
    """A window's finished ``frames`` joined to ``tail``, the output so far over its shared frames:
    cross-faded there (``exact``: the user's KEEP pixels of those frames), this window's own after."""
    n = window.shared
    if not n:
        return frames
    return np.concatenate([crossfade(tail[:n], frames[:n], exact), frames[n:]])


def partial_folder(out: Path) -> Path:
    """Where a long run keeps its finished windows until ``out`` is complete: ``OUT.partial``."""
    return out.with_name(out.name + PARTIAL_SUFFIX)


def resume_key(ctx: RunContext) -> str:
    """A digest of everything a window's output depends on: the job's arrays and windows, every setting."""
    job = ctx.job
    facts = {
        "format": STATE_FORMAT,
        "settings": ctx.settings.as_dict(),
        "prompt": ctx.prompt,
        "negative": ctx.negative,
        "windows": [[w.start, w.stop] for w in ctx.plan],
        "fps": job.fps,
    }
    return fingerprint(facts, arrays=(job.video, job.mask, *job.refs))


class WindowStore:
    """Finished windows under ``OUT.partial/windows/``: ``NNN.npy`` frames, then ``NNN.json`` record."""

    def __init__(self, out: Path, key: str) -> None:
        self.out = out
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

    def remove(self) -> None:
        """Remove ``OUT.partial`` (once ``OUT`` is complete)."""
        shutil.rmtree(partial_folder(self.out), ignore_errors=True)


class ReadOnlyStore(WindowStore):
    """The saved windows as a parallel run's ranks other than 0 see them: read, never written. Every rank
    reuses the same windows (rank 0 saves a window only after all ranks generated it), so every rank makes
    the same pipeline calls."""

    def save(self, window: Window, frames: np.ndarray, record: dict) -> None:
        """Rank 0 saves."""

    def drop_from(self, index: int) -> int:
        """Rank 0 drops."""
        return 0


def finish_frames(
    ctx: RunContext, video: np.ndarray, conditioning: Job, window: Window, previous: np.ndarray
):
    """Colour match (``color_match``) then composite (``composite``) one window's generated frames;
    returns the frames and the colour-match record (``None`` when off).

    A later window of a long job is matched to ``previous`` (the output so far over the frames it shares
    with the previous window) with ``settings.window_color_method()``: the whole colour distribution of its
    generated pixels there is mapped onto the previous window's (the same frames, generated twice), and
    the map applied to everything the window generates. A first window, or one that shares no generated
    pixel, is matched at the mask's border (mean colour, ``composite.color_match``).
    """
    settings, user_mask = ctx.settings, ctx.job.mask[window.frames]
    colour = None
    shared = user_mask[: window.shared]
    if settings.color_match and window.index > 0 and shared.any():
        fit = np.zeros_like(user_mask)
        fit[: window.shared] = shared
        video, colour = match_colors_record(
            video, previous[: window.shared], settings.window_color_method(), fit, shared, apply_to=user_mask
        )
    elif settings.color_match:
        video, colour = color_match(video, conditioning.video, conditioning.mask, apply_to=user_mask)
    if settings.composite:
        video = composite(video, ctx.job.video[window.frames], user_mask, settings.feather)
    return video, colour


def generate_window(ctx: RunContext, window: Window, head_frames: np.ndarray) -> tuple[np.ndarray, dict]:
    """Generate one window, colour-match and composite it; return its frames and its record."""
    own = Stopwatch()
    start = time.perf_counter()
    with own("inputs"):
        conditioning = window_job(ctx.job, window, head_frames)
    label = f"denoise {window.index + 1}/{window.count}" if window.count > 1 else "denoise"

    def report(stage, done, total):
        ctx.report(label if stage == "denoise" else stage, done, total)

    seed = ctx.settings.seed + window.index
    prompt = ctx.prompt_for(window)
    video = generate(ctx, conditioning, seed=seed, clock=own, report=report, prompt=prompt)
    ctx.report("composite", window.index, window.count)
    with own("composite"):
        video, colour = finish_frames(ctx, video, conditioning, window, head_frames)
    ctx.report("composite", window.index + 1, window.count)
    own.seconds["total"] = time.perf_counter() - start
    ctx.clock.add(own)
    record = {
        **window.as_dict(),
        "seed": seed,
        **({"prompt": prompt} if ctx.settings.window_prompts else {}),
        "color_match": colour,
        **({"cache": ctx.cache} if ctx.cache is not None else {}),
        "timings": {k: round(v, 4) for k, v in own.seconds.items()},
        "resumed": False,
        "audit": ctx.audits[window.index],
    }
    return video, record


def generate_windows(ctx: RunContext, store: WindowStore | None, sink) -> list[dict]:
    """Every window of the job in order, each continuing the output so far; windows saved in ``store``
    (a long job's) are reused and each new one saved there. Finished frames go to ``sink.append`` in
    order, as soon as no later window changes them: only the frames a window shares with the next are
    held, so a run holds O(window) frames whatever the clip's length. Returns each window's record."""
    job, plan = ctx.job, ctx.plan
    shape = job.mask.shape[1:]
    records, regenerating = [], store is None
    tail, tail_start = np.zeros((0, *shape, 3), np.uint8), 0  # the output from frame tail_start on
    for window in plan:
        with ctx.clock("stitch"):  # frames before this window are final
            sink.append(tail[: window.start - tail_start])
            tail, tail_start = tail[window.start - tail_start :], window.start
        saved = None if regenerating else store.load(window, shape)
        if saved is not None:
            output, record = saved
            record["resumed"] = True
            log.info("window %d/%d: reused from %s", window.index + 1, window.count, store.folder)
        else:
            if not regenerating:
                regenerating = True
                if store.drop_from(window.index):
                    log.info(
                        "note: discarding saved windows from %d on (settings or job differ)", window.index + 1
                    )
            output, record = generate_window(ctx, window, tail)
            if store is not None:
                store.save(window, output, record)
                seconds = record["timings"]["total"]
                log.info("window %d/%d: done in %.1f s", window.index + 1, window.count, seconds)
        with ctx.clock("stitch"):
            shared = job.mask[window.start : window.start + window.shared]
            exact = ~shared if ctx.settings.composite else np.zeros_like(shared)
            tail = stitch(tail, output, window, exact)
        for array in (job.video, job.mask):  # this window's pages: read again if a later window needs them
            media.release(array)
        records.append(record)
    with ctx.clock("stitch"):
        sink.append(tail)
    return records


__all__ = ["crossfade", "generate_windows", "partial_folder", "window_job"]
