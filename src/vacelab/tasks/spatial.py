"""Spatial tasks: ``inpaint`` / ``remove`` (a mask on the source) and ``outpaint`` (a band around it)."""

from __future__ import annotations

from functools import reduce

import numpy as np

from .. import media
from ..errors import InputError, cli_flag
from ..job import Job
from . import masks
from .options import REMOVE_GROW, Options, numbers, split_at_frame
from .source import (
    FILL_GRAY,
    Clip,
    check_block_size,
    job_size,
    mood_crops,
    probe_hw,
    read_clip,
    read_refs,
    to_job_coords,
)


def build_inpaint(task: str, opts: Options) -> Job:
    """``inpaint`` and ``remove``: the union of every mask given, grown, filled (gray by default)."""
    if not opts.video:
        raise InputError(f"{task} needs --video")
    source_hw = probe_hw(opts.video)
    size = job_size(opts, source_hw)
    clip = read_clip(opts.video, opts, size, source_hw)
    mask, notes = collect_mask(opts, clip, size)
    grow_px = int(opts.grow if opts.grow is not None else (REMOVE_GROW if task == "remove" else 0))
    mask = masks.grow(mask, grow_px)
    fill = opts.fill or "gray"
    if fill not in ("gray", "source"):
        raise InputError(f"{task} takes gray or source", field="fill", value=repr(fill))
    feather = masks.check_feather(int(opts.fill_feather))
    video = clip.frames if fill == "source" else FilledVideo(clip.frames, mask, feather)
    refs, ref_notes = read_refs(opts.ref, size)
    negative = opts.negative_prompt
    if task == "remove" and opts.what:
        negative = ", ".join(p for p in (opts.what.strip(), negative) if p)
    if task == "remove" and opts.grow is None:
        notes.append(
            f"remove: mask grown by {REMOVE_GROW} px to cover the object's edge at VAE resolution (--grow)"
        )
    return Job(
        task=task,
        video=video,
        mask=mask,
        fps=clip.fps,
        refs=refs,
        original=clip.frames,
        prompt=opts.prompt,
        negative_prompt=negative,
        notes=clip.notes + notes + masks.lost_track_notes(mask) + ref_notes,
        source=clip.source,
    )


def fill_gray(frames: np.ndarray, mask: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """The conditioning video of ``frames``: GENERATE pixels gray (127); ``alpha`` feathers the gray into
    the source inside the mask's edge. KEEP pixels are always the source's, untouched."""
    video = frames.copy()
    rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
    if not len(rows):
        return video
    box = np.s_[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # only the masked area's bounding box
    np.copyto(video[box], np.uint8(FILL_GRAY), where=mask[box][..., None])
    if alpha is not None:
        soft = (alpha > 0) & (alpha < 1)
        a = alpha[soft][:, None]
        video[soft] = np.round(frames[soft] * (1 - a) + FILL_GRAY * a).astype(np.uint8)
    return video


class LazyVideo:
    """A job's conditioning video made from the source clip for the frames read, as they are read: the job
    holds the clip once, not twice (2.4 GB a copy for 2001 frames at 480p). Indexed like the array it
    stands for (``video[i]``, ``video[a:b]``, ``video[a:b, ::s, ::s]`` make only those frames; iterating
    makes 16 at a time); any other index, and ``np.asarray(video)``, make the whole clip. A subclass makes
    the frames of a slice in ``_make``."""

    ndim, dtype = 4, np.dtype(np.uint8)

    def __init__(self, shape: tuple[int, ...]):
        self.shape, self.nbytes = tuple(shape), int(np.prod(shape))

    def _make(self, part: slice) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.shape[0]

    def __iter__(self):
        for start in range(0, len(self), 16):
            yield from self._make(slice(start, start + 16))

    def __getitem__(self, key) -> np.ndarray:
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) and key else (key, ())
        if isinstance(first, int | np.integer):
            if not -len(self) <= first < len(self):
                raise IndexError(first)
            index = int(first) % len(self)
            return self._make(slice(index, index + 1))[0][rest]
        if isinstance(first, slice):
            return self._make(first)[(slice(None), *rest)]
        return np.asarray(self)[key]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self._make(slice(None))
        return out if dtype is None else out.astype(dtype)


class FilledVideo(LazyVideo):
    """An inpaint job's conditioning video: :func:`fill_gray` of the source ``frames``, the gray feathered
    over ``feather`` px (:func:`~vacelab.tasks.masks.feather_alpha`, its weights made for the frames read
    alone)."""

    def __init__(self, frames: np.ndarray, mask, feather: int = 0):
        super().__init__(frames.shape)
        self.frames, self.mask, self.feather = frames, mask, feather

    def _make(self, part: slice) -> np.ndarray:
        mask = self.mask[part]
        return fill_gray(self.frames[part], mask, masks.feather_alpha(mask, self.feather))


class PaddedVideo(LazyVideo):
    """An outpaint job's conditioning video: the source ``frames`` at ``(top, left)`` of a canvas of
    ``size`` (h, w), the band around them ``fill``: gray, black, or ``edge`` (the border pixels repeated)."""

    def __init__(self, frames: np.ndarray, size: tuple[int, int], top: int, left: int, fill: str):
        super().__init__((len(frames), *size, 3))
        self.frames, self.top, self.left, self.fill = frames, top, left, fill

    def _make(self, part: slice) -> np.ndarray:
        frames = self.frames[part]
        (inner_h, inner_w), (height, width) = frames.shape[1:3], self.shape[1:3]
        if self.fill == "edge":
            pads = ((0, 0), (self.top, height - self.top - inner_h), (self.left, width - self.left - inner_w))
            return np.pad(frames, (*pads, (0, 0)), mode="edge")
        video = np.full((len(frames), height, width, 3), FILL_GRAY if self.fill == "gray" else 0, np.uint8)
        video[:, self.top : self.top + inner_h, self.left : self.left + inner_w] = frames
        return video


def collect_mask(opts: Options, clip: Clip, size: tuple[int, int]) -> tuple[media.PackedMask, list[str]]:
    """The union of every mask option given, bit-packed, and notes on it."""
    frames = len(clip.frames)
    parts, notes = [], []
    if opts.mask:
        read = media.read_mask(
            opts.mask, size=size, frames=frames, fps=float(opts.fps), start=float(opts.start),
            source_hw=clip.source_hw, notes=notes,
        )  # fmt: skip
        parts.append(media.PackedMask.of(read))
    if opts.bbox is not None:
        mask, note = _bbox_mask(opts.bbox, opts, clip, size)
        parts.append(mask)
        notes += note
    if opts.polygon:
        shapes = [
            (span, to_job_coords(points, opts, clip.source_hw, size))
            for span, points in masks.read_polygons(opts.polygon, frames)
        ]
        parts.append(masks.polygon_mask(shapes, frames, size))
    if opts.track_box or opts.track_points or opts.segment is not None:
        tracked, track_notes = _track(opts, clip, size)
        parts.append(media.PackedMask.of(tracked))
        notes += track_notes
    if not parts:
        raise InputError(
            "no mask given: use --mask, --bbox, --polygon, --track-box, --track-points or --segment"
        )
    mask = parts[0]
    if len(parts) > 1:
        mask = media.PackedMask(reduce(np.bitwise_or, [part.bits for part in parts]), size[1])
    if not mask.bits.any():
        raise InputError("the mask is empty: nothing to generate")
    return mask, notes


def bbox_entries(value) -> list[tuple[object, int | None]]:
    """The ``bbox`` option as ``[(box, key frame or None), ...]``.

    One box (``"X0,Y0,X1,Y1"``, or four numbers) is the box on every frame; a list of boxes
    ``"X0,Y0,X1,Y1@FRAME"`` (or one such string) is keyed to those frames.
    """
    if isinstance(value, str) or not isinstance(value, list | tuple) or all(_scalar(v) for v in value):
        value = [value]
    entries = [split_at_frame(v, "bbox") for v in value]
    keyed = [frame for _, frame in entries if frame is not None]
    if keyed and len(keyed) < len(entries):
        raise InputError(
            "mixes boxes keyed to a frame (X0,Y0,X1,Y1@FRAME) with boxes that are not: key every box, "
            "or give one box for every frame",
            field="bbox",
            value=_shown(value),
        )
    if len(entries) > 1 and not keyed:
        raise InputError(
            "several boxes without a frame: key each to a frame (X0,Y0,X1,Y1@FRAME), or give one box",
            field="bbox",
            value=_shown(value),
        )
    return entries


def _scalar(item) -> bool:
    """A number of a box given as a list of four (not a box of its own)."""
    return not isinstance(item, list | tuple) and not ("," in str(item) or "@" in str(item))


def _shown(value) -> str:
    return " ".join(str(v) for v in value)


def _bbox_mask(value, opts: Options, clip: Clip, size: tuple[int, int]) -> tuple[media.PackedMask, list[str]]:
    """The ``bbox`` option as a mask: one box on every frame, or boxes keyed to frames (interpolated)."""
    frames = len(clip.frames)
    entries = bbox_entries(value)
    if entries[0][1] is None:
        corners, notes = job_box(entries[0][0], "bbox", opts, clip, size)
        return masks.bbox_mask(corners, frames, size), notes
    keys, notes, seen = [], [], set()
    for text, frame in entries:
        shown = f"{text}@{frame}"
        if not 0 <= frame < frames:
            raise InputError(f"key frame outside the job (0..{frames - 1})", field="bbox", value=shown)
        if frame in seen:
            raise InputError(f"two boxes keyed to frame {frame}", field="bbox", value=shown)
        seen.add(frame)
        corners, note = job_box(text, "bbox", opts, clip, size)
        keys.append((frame, corners))
        notes += note
    return masks.keyed_bbox_mask(keys, frames, size), notes


def job_box(text, field: str, opts: Options, clip: Clip, size: tuple[int, int]) -> tuple[tuple, list[str]]:
    """A box ``"X0,Y0,X1,Y1"`` -> ``((x0, y0, x1, y1) in job pixels, notes)``.

    With ``--coords source`` the box is checked against the source frame, then mapped through the resize
    and centre crop and cut to what the crop keeps (a note says so); a box the crop removes entirely is
    refused in the coordinates the user gave. Job coordinates are checked by ``masks.bbox_mask``.
    """
    box = numbers(text, 4, field, kind=float)
    corners = to_job_coords(np.reshape(box, (2, 2)), opts, clip.source_hw, size).ravel()
    if opts.coords != "source":
        return tuple(corners), []
    (src_h, src_w), (height, width) = clip.source_hw, size
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= src_w and 0 <= y0 < y1 <= src_h):
        raise InputError(
            f"must satisfy 0 <= X0 < X1 <= {src_w} and 0 <= Y0 < Y1 <= {src_h} "
            f"(source pixels, {src_w}x{src_h})",
            field=field,
            value=text,
        )
    cut = np.clip(np.round(corners), [0, 0, 0, 0], [width, height, width, height])
    if cut[0] >= cut[2] or cut[1] >= cut[3]:
        raise InputError(
            f"lies in the part of the {src_w}x{src_h} source that the centre crop to "
            f"{width}x{height} removes",
            field=field,
            value=text,
        )
    notes = []
    if not np.array_equal(cut, np.round(corners)):
        x0, y0, x1, y1 = (int(v) for v in cut)
        notes.append(f"{cli_flag(field)} {text}: cut to {x0},{y0},{x1},{y1} in job pixels by the centre crop")
    return tuple(float(v) for v in cut), notes


def parse_track_box(value, opts: Options, clip: Clip, size: tuple[int, int]) -> tuple[tuple, int, list[str]]:
    """``"X0,Y0,X1,Y1[@FRAME]"`` -> ``((x0, y0, x1, y1), frame, notes)`` in job pixels, validated."""
    text, frame = split_at_frame(value, "track_box")
    (x0, y0, x1, y1), notes = job_box(text, "track_box", opts, clip, size)
    masks.bbox_mask((x0, y0, x1, y1), 1, size, field="track_box")  # validates the box
    box = (float(x0), float(y0), float(x1), float(y1))
    return box, _prompt_frame(frame, len(clip.frames), "track_box"), notes


def parse_track_points(
    value, opts: Options, clip: Clip, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """``"X,Y[,X,Y...][@FRAME]"`` -> (points [N, 2], labels [N], frame); ``-X,Y`` marks a negative click."""
    text, frame = split_at_frame(value, "track_points")
    tokens = [t.strip() for t in str(text).split(",")]
    if len(tokens) < 2 or len(tokens) % 2:
        raise InputError(
            "expected X,Y pairs (a leading minus marks a negative click)",
            field="track_points",
            value=repr(value),
        )
    labels = np.array([0 if tokens[i].startswith("-") else 1 for i in range(0, len(tokens), 2)], np.int64)
    xy = np.abs(np.reshape(numbers(",".join(tokens), None, "track_points", kind=float), (-1, 2)))
    xy = to_job_coords(xy, opts, clip.source_hw, size)
    height, width = size
    if not ((xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)).all():
        raise InputError(
            f"a point lies outside the {width}x{height} frame (job pixels)",
            field="track_points",
            value=repr(value),
        )
    return xy, labels, _prompt_frame(frame, len(clip.frames), "track_points")


def _prompt_frame(frame: int | None, frames: int, field: str) -> int:
    frame = 0 if frame is None else frame
    if not 0 <= frame < frames:
        raise InputError(f"frame outside the clip (0..{frames - 1})", field=field, value=f"@{frame}")
    return frame


def _track(opts: Options, clip: Clip, size: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    parsed = [parse_track_box(v, opts, clip, size) for v in opts.track_box]
    boxes = [(box, frame) for box, frame, _ in parsed]
    notes = [note for *_, box_notes in parsed for note in box_notes]
    points = [parse_track_points(v, opts, clip, size) for v in opts.track_points]
    text = opts.segment
    if text is not None and not text.strip():
        raise InputError("the phrase is empty", field="segment")
    from ..tracking import track_mask

    extra = {"model": opts.track_model} if opts.track_model else {}
    tracked = track_mask(clip.frames, boxes=boxes or None, points=points or None, text=text, **extra)
    tracked = np.asarray(tracked, bool)
    if tracked.shape != (len(clip.frames), *size):
        raise RuntimeError(
            f"track_mask returned a mask of shape {tracked.shape}, expected {(len(clip.frames), *size)}"
        )
    what = ", ".join(
        [f"{len(boxes)} box(es)"] * bool(boxes) + [f"{len(points)} click set(s)"] * bool(points)
        + [f"phrase {text!r}"] * (text is not None)
    )  # fmt: skip
    return tracked, [*notes, f"mask tracked through the clip from {what}"]


def build_outpaint(task: str, opts: Options) -> Job:
    """``outpaint``: the source scaled into an inner box (``--ratio`` or ``--expand``), the band GENERATE."""
    if not opts.video:
        raise InputError("outpaint needs --video")
    if (opts.ratio is None) == (opts.expand is None):
        raise InputError("outpaint needs exactly one of --ratio R or --expand L,T,R,B")
    source_hw = probe_hw(opts.video)
    height, width = size = job_size(opts, source_hw)
    if opts.ratio is not None:
        ratio = float(opts.ratio)
        if not 0 < ratio < 1:
            raise InputError("must be between 0 and 1 (exclusive), e.g. 0.8", field="ratio", value=opts.ratio)
        inner_h, inner_w = 2 * round(height * ratio / 2), 2 * round(width * ratio / 2)
        top, left = (height - inner_h) // 2, (width - inner_w) // 2
        if inner_h < 2 or inner_w < 2:
            raise InputError(f"leaves no content at {width}x{height}", field="ratio", value=ratio)
    else:
        left, top, right, bottom = numbers(opts.expand, 4, "expand")
        inner_h, inner_w = height - top - bottom, width - left - right
        if (
            min(left, top, right, bottom) < 0
            or not any((left, top, right, bottom))
            or inner_h < 2
            or inner_w < 2
        ):
            raise InputError(
                f"pixels must be >= 0, not all 0, and leave content inside the {width}x{height} canvas",
                field="expand",
                value=f"{left},{top},{right},{bottom}",
            )
    clip = read_clip(opts.video, opts, (inner_h, inner_w), source_hw)
    frames = len(clip.frames)
    fill = opts.fill or "gray"
    if fill not in ("gray", "black", "edge"):
        raise InputError("outpaint takes gray, black or edge", field="fill", value=repr(fill))
    video = PaddedVideo(clip.frames, size, top, left, fill)
    mask = np.ones((frames, height, width), bool)
    mask[:, top : top + inner_h, left : left + inner_w] = False
    refs, notes = read_refs(opts.ref, size)
    auto = mood_crops(clip.frames, int(opts.auto_refs))
    if auto:
        notes.append(
            f"--auto-refs {len(auto)}: mood crops of the source added after the {len(refs)} --ref image(s)"
        )
    notes.append(f"content {inner_w}x{inner_h} at x={left}, y={top} of the {width}x{height} canvas")
    bands = {"left": left, "top": top, "right": width - left - inner_w, "bottom": height - top - inner_h}
    for name, px in bands.items():
        notes += check_block_size(px, f"{name} band")
    return Job(
        task=task,
        video=video,
        mask=mask,
        fps=clip.fps,
        refs=refs + auto,
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        notes=clip.notes + notes,
    )
