"""Temporal tasks: ``firstframe``, ``lastframe``, ``firstlast``, ``keyframes`` and ``extend``.

Frames not given are gray (127) and GENERATE. Keyframe strategies (docs/prepare.md explains why):

- ``naive``: each keyframe KEEP on its own frame only (the field report's failing setup);
- ``aligned``: each keyframe fills its whole VAE group (frame 0 alone, or frames 4t-3..4t) and the group is
  KEEP, so every latent step is uniformly kept or generated; two keyframes in one group: the later one is
  snapped to the next group (order is kept);
- ``anchor``: aligned plus a KEEP strip of ``--anchor-px`` on every frame, from the nearest keyframe.
"""

from __future__ import annotations

import numpy as np

from .. import media
from ..errors import InputError
from ..geometry import DEFAULT_FRAMES, mask_read_frames, vae_groups
from ..job import Job
from .options import ANCHOR_EDGES, STRATEGIES, Options, frame_count, key_spec
from .source import FILL_GRAY, check_block_size, job_size, probe_hw, read_clip, read_refs


def _fixed_frames(opts: Options, task: str) -> int:
    frames = frame_count(opts.frames)
    if frames == "all":
        raise InputError(
            f"{task} has no clip to take the length from; give a 4n+1 number", field="frames", value="all"
        )
    return frames or DEFAULT_FRAMES


def _blank(frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.full((frames, *size, 3), FILL_GRAY, np.uint8), np.ones((frames, *size), bool)


def _end_images(task: str, opts: Options) -> tuple[list[np.ndarray], tuple[int, int]]:
    """The images a first/last-frame task keeps, at job size: from --image(/--image2) or --video's ends."""
    wanted = 2 if task == "firstlast" else 1
    if opts.video and (opts.image or opts.image2):
        raise InputError(f"{task}: give --image{' --image2' if wanted == 2 else ''} or --video, not both")
    if opts.video:
        source_hw = probe_hw(opts.video)
        size = job_size(opts, source_hw)
        first_only = task == "firstframe"
        clip, _ = media.read_video(
            opts.video,
            size=size,
            fps=float(opts.fps),
            start=float(opts.start),
            max_frames=1 if first_only else None,
        )
        ends = {"firstframe": [clip[0]], "lastframe": [clip[-1]], "firstlast": [clip[0], clip[-1]]}[task]
        return ends, size
    paths = [opts.image, opts.image2][:wanted]
    if not all(paths):
        raise InputError(f"{task} needs {' and '.join(['--image', '--image2'][:wanted])} (or --video)")
    images = [media.read_image(p) for p in paths]
    size = job_size(opts, images[0].shape[:2])
    return [media.cover_crop(image, size) for image in images], size


def build_endframes(task: str, opts: Options) -> Job:
    """``firstframe`` / ``lastframe`` / ``firstlast``: the given frame(s) KEEP, everything else generated."""
    images, size = _end_images(task, opts)
    frames = _fixed_frames(opts, task)
    positions = {"firstframe": [0], "lastframe": [frames - 1], "firstlast": [0, frames - 1]}[task]
    if task == "firstlast" and frames < 2:
        raise InputError("firstlast needs at least 5 frames", field="frames", value=frames)
    video, mask = _blank(frames, size)
    for position, image in zip(positions, images, strict=True):
        video[position] = image
        mask[position] = False
    refs, notes = read_refs(opts.ref, size)
    return Job(task=task, video=video, mask=mask, fps=float(opts.fps), refs=refs, prompt=opts.prompt,
               negative_prompt=opts.negative_prompt, notes=notes)  # fmt: skip


def build_reference(task: str, opts: Options) -> Job:
    """``reference`` (reference-to-video, R2V): no source, every frame GENERATE on the gray canvas, the
    ``--ref`` images (at least one) in the order given; the job takes the first reference's orientation
    for a named ``--size``."""
    if not opts.ref:
        raise InputError("reference needs at least one reference image", field="ref")
    size = job_size(opts, probe_hw(opts.ref[0]))
    refs, notes = read_refs(opts.ref, size)
    video, mask = _blank(_fixed_frames(opts, task), size)
    return Job(task=task, video=video, mask=mask, fps=float(opts.fps), refs=refs, prompt=opts.prompt,
               negative_prompt=opts.negative_prompt, notes=notes)  # fmt: skip


def build_extend(task: str, opts: Options) -> Job:
    """``extend``: the first ``--keep`` frames of ``--video`` KEEP, the rest up to ``--frames`` generated."""
    if not opts.video or opts.keep is None:
        raise InputError("extend needs --video and --keep N")
    frames = _fixed_frames(opts, task)
    keep = int(opts.keep)
    if not 1 <= keep < frames:
        raise InputError(f"must be at least 1 and fewer than the {frames} frames", field="keep", value=keep)
    size = job_size(opts, probe_hw(opts.video))
    clip, fps = media.read_video(
        opts.video, size=size, fps=float(opts.fps), start=float(opts.start), max_frames=keep
    )
    if len(clip) < keep:
        raise InputError(
            f"the video {opts.video} holds only {len(clip)} frames at {opts.fps:g} fps",
            field="keep",
            value=keep,
        )
    video, mask = _blank(frames, size)
    video[:keep] = clip
    mask[:keep] = False
    refs, notes = read_refs(opts.ref, size)
    if (keep - 1) % 4:
        lower = (keep - 1) // 4 * 4 + 1
        notes.append(
            f"--keep {keep}: frame {keep - 1} shares a VAE group with generated frames (MIXED_GROUP); "
            f"{lower} or {lower + 4} keeps whole groups"
        )
    return Job(task=task, video=video, mask=mask, fps=fps, refs=refs, prompt=opts.prompt,
               negative_prompt=opts.negative_prompt, notes=notes)  # fmt: skip


def build_keyframes(task: str, opts: Options) -> Job:
    """``keyframes`` from ``--key FRAME=IMAGE`` or ``--video V --every K``, placed by ``--strategy``."""
    if opts.strategy not in STRATEGIES:
        raise InputError(f"choose from {', '.join(STRATEGIES)}", field="strategy", value=repr(opts.strategy))
    if bool(opts.key) == bool(opts.video):
        raise InputError("keyframes needs --key FRAME=IMAGE (repeatable) or --video V --every K, not both")
    original, notes = None, []
    if opts.video:
        if opts.every is None or int(opts.every) < 1:
            raise InputError("keyframes --video needs --every K (K >= 1 frames between keyframes)")
        source_hw = probe_hw(opts.video)
        size = job_size(opts, source_hw)
        clip = read_clip(opts.video, opts, size, source_hw)
        original, notes, fps = clip.frames, clip.notes, clip.fps
        frames = len(original)
        keys = {f: original[f] for f in range(0, frames, int(opts.every))}
    else:
        if opts.every is not None:
            raise InputError("needs a video to take keyframes from", field="every")
        specs = [key_spec(v) for v in opts.key]
        frames = _fixed_frames(opts, task)
        seen = set()
        for frame, _ in specs:
            if not 0 <= frame < frames:
                raise InputError(
                    f"keyframe index outside the clip (0..{frames - 1})", field="key", value=f"{frame}=..."
                )
            if frame in seen:
                raise InputError(f"duplicate keyframe index {frame}", field="key", value=f"{frame}=...")
            seen.add(frame)
        images = [media.read_image(path) for _, path in specs]
        size = job_size(opts, images[0].shape[:2])
        keys = {frame: media.cover_crop(image, size) for (frame, _), image in zip(specs, images, strict=True)}
        fps = float(opts.fps)
    video, mask, placed_notes = place_keyframes(
        keys, frames, size, opts.strategy, anchor_px=int(opts.anchor_px), anchor_edge=opts.anchor_edge
    )
    refs, ref_notes = read_refs(opts.ref, size)
    return Job(task=task, video=video, mask=mask, fps=fps, refs=refs, original=original, prompt=opts.prompt,
               negative_prompt=opts.negative_prompt, notes=notes + placed_notes + ref_notes)  # fmt: skip


def place_keyframes(
    keys: dict[int, np.ndarray],
    frames: int,
    size: tuple[int, int],
    strategy: str,
    *,
    anchor_px: int = 16,
    anchor_edge: str = "bottom",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Conditioning video and mask for keyframes ``{frame: image at job size}`` under ``strategy``."""
    video, mask = _blank(frames, size)
    order = sorted(keys)
    if strategy == "naive":
        for frame in order:
            video[frame] = keys[frame]
            mask[frame] = False
        return video, mask, [f"naive: keyframes KEEP on their own frames only ({len(order)} keyframes)"]
    groups = vae_groups(frames)
    group_of = {}
    notes = []
    previous = -1
    for frame in order:
        own = (frame + 3) // 4
        group = max(own, previous + 1)  # keyframes keep their order: a taken group pushes to the next one
        if group >= len(groups):
            raise InputError(
                f"no free VAE group left after frame {groups[previous].stop - 1} "
                f"({len(order)} keyframes, {len(groups)} groups in {frames} frames)",
                field="key",
                value=frame,
            )
        if group != own:
            notes.append(
                f"aligned: keyframe {frame} snapped to VAE group {group} (frames {_span(groups[group])}): "
                f"its own group {own} already holds a keyframe"
            )
        previous = group
        group_of[frame] = group
        video[groups[group].start : groups[group].stop] = keys[frame]
        mask[groups[group].start : groups[group].stop] = False
    notes.insert(
        0,
        "aligned: each keyframe fills its whole VAE group: "
        + "; ".join(f"{f} -> frames {_span(groups[t])}" for f, t in group_of.items()),
    )
    read = mask_read_frames(frames)  # reference encoding: the frame whose mask latent step t reads
    early = [f for f, t in group_of.items() if t >= 1 and int(read[t - 1]) in groups[t]]
    if early:
        notes.append(
            f"keyframes {', '.join(map(str, early))}: with --mask-encoding reference (the default) "
            "the latent step before each of them reads this keyframe's KEEP mask over its own gray frames "
            "(MASK_SAMPLE_MISMATCH in the audit); run with --mask-encoding aligned"
        )
    if strategy == "anchor":
        notes += _anchor_strip(video, mask, keys, anchor_px, anchor_edge)
    return video, mask, notes


def _anchor_strip(video, mask, keys, px: int, edge: str) -> list[str]:
    if edge not in ANCHOR_EDGES:
        raise InputError(f"choose from {', '.join(ANCHOR_EDGES)}", field="anchor_edge", value=repr(edge))
    height, width = mask.shape[1:]
    along = height if edge in ("bottom", "top") else width
    if not 1 <= px <= along // 2:
        raise InputError(
            f"must be between 1 and {along // 2} for the {edge} edge", field="anchor_px", value=px
        )
    region = {
        "bottom": np.s_[height - px :, :],
        "top": np.s_[:px, :],
        "left": np.s_[:, :px],
        "right": np.s_[:, width - px :],
    }[edge]
    order = np.array(sorted(keys))
    for frame in range(len(mask)):
        nearest = int(order[np.argmin(np.abs(order - frame))])  # ties: the earlier keyframe
        video[frame][region] = keys[nearest][region]
        mask[frame][region] = False
    return [f"anchor: KEEP strip of {px} px at the {edge} edge on every frame, from the nearest keyframe",
            *check_block_size(px, "--anchor-px")]  # fmt: skip


def _span(group: range) -> str:
    return f"{group.start}" if len(group) == 1 else f"{group.start}-{group.stop - 1}"
