"""``control``: a control video in place of the source (VACE's V2V), whole or inside a mask (MV2V).

The control video is drawn from ``--video`` at job size, the way VACE's annotators draw it:

- ``gray``: the luminance (ITU-R BT.601, OpenCV's ``RGB2GRAY``) as three equal channels: colourisation;
- ``edges``: OpenCV's Canny edges (thresholds 100 and 200, as VACE's canny annotator) as white lines on
  black: the structure, without texture or colour;
- ``scribble``: a simplified, thicker line drawing (Gaussian blur, Canny at 50 / 150, lines dilated to
  3 px): the rough shapes only. VACE's own scribble annotator is a learned model; this is its model-free
  stand-in;
- ``depth``: relative depth from a transformers depth model (Depth Anything V2 Small by default), near =
  bright, normalised once over the clip (:mod:`vacelab.annotators`);
- ``pose``: the OpenPose-style body skeleton of each person's ViTPose keypoints; the persons are the
  mask's box on each frame when a mask option is given, else those an RT-DETR detector finds;
- ``layout``: the outline of the object given by the mask options (a box, keyed boxes, a tracked object),
  black on a white canvas; the whole frame is GENERATE (the layout replaces the video).

Without a mask option every pixel is GENERATE and the model follows the control. With ``--mask``,
``--bbox``, ``--polygon`` or a tracked object, only that region is GENERATE and carries the control; the
source stays KEEP elsewhere (masked control). ``layout`` reads the mask options as the object to outline.
"""

from __future__ import annotations

import numpy as np

from ..annotators.drawing import layout_frames
from ..errors import InputError
from ..job import Job
from .options import MASK_OPTIONS, MODEL_KINDS, Options
from .source import job_size, probe_hw, read_clip, read_refs
from .spatial import LazyVideo, collect_mask


def control_frames(frames: np.ndarray, kind: str) -> np.ndarray:
    """The model-free control video (gray, edges, scribble) of uint8 RGB [F, H, W, 3] frames."""
    import cv2

    if kind not in ("gray", "edges", "scribble"):
        raise InputError("choose from gray, edges, scribble", field="kind", value=kind)
    out = np.empty_like(frames)
    for f, frame in enumerate(frames):
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if kind == "edges":
            gray = cv2.Canny(gray, 100, 200)
        elif kind == "scribble":
            lines = cv2.Canny(cv2.GaussianBlur(gray, (5, 5), 0), 50, 150)
            gray = cv2.dilate(lines, np.ones((3, 3), np.uint8))
        out[f] = gray[..., None]
    return out


def keep_source(drawn: np.ndarray, frames: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``drawn`` (a control video) with the source ``frames`` put back outside ``region`` (KEEP), in place,
    frame by frame: each frame becomes the source, the control pasted back over the region (only its
    bounding box is read and masked: 8x faster than a masked copy of the whole frame)."""
    for control, source, inside in zip(drawn, frames, region, strict=True):
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] if len(rows) else np.s_[0:0, 0:0]
        kept = control[box].copy()
        control[...] = source
        np.copyto(control[box], kept, where=inside[box][..., None])
    return drawn


class DrawnVideo(LazyVideo):
    """A model-free control video (:func:`control_frames` of the source ``frames``), inside ``region`` only
    when given (:func:`keep_source`), drawn for the frames read as they are read: the job holds the clip
    once."""

    def __init__(self, frames: np.ndarray, kind: str, region: np.ndarray | None = None):
        super().__init__(frames.shape)
        self.frames, self.kind, self.region = frames, kind, region

    def _make(self, part: slice) -> np.ndarray:
        drawn = control_frames(self.frames[part], self.kind)
        return drawn if self.region is None else keep_source(drawn, self.frames[part], self.region[part])


def region_boxes(region: np.ndarray) -> list[list[tuple[int, int, int, int]]]:
    """Per frame, the box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) around the region; ``[]``: empty."""
    boxes = []
    for frame in region:
        rows, cols = np.flatnonzero(frame.any(1)), np.flatnonzero(frame.any(0))
        boxes.append([(cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)] if len(rows) else [])
    return boxes


def _model_control(frames: np.ndarray, opts: Options, region: np.ndarray | None) -> tuple[np.ndarray, list]:
    """``depth`` or ``pose`` drawn by their models, and notes saying by which."""
    from .. import annotators
    from ..annotators.drawing import depth_frames, pose_frames

    if opts.kind == "depth":
        model = opts.control_model or annotators.DEPTH_MODEL
        depth = annotators.estimate_depth(frames, model=model)
        return depth_frames(depth), [f"control: depth by {model}, near = bright, normalised over the clip"]
    model = opts.control_model or annotators.POSE_MODEL
    boxes = region_boxes(region) if region is not None else None
    poses = annotators.estimate_poses(frames, boxes=boxes, model=model, person_model=opts.person_model)
    found = "the mask's box on each frame"
    if boxes is None:
        found = f"found by {opts.person_model or annotators.PERSON_MODEL}"
    people = sum(map(len, poses))
    notes = [f"control: pose by {model}; persons: {found}; {people} person-frame(s) drawn"]
    if not people:
        notes.append("pose: nobody was found in any frame: the control video is black")
    return pose_frames(poses, frames.shape[1:3]), notes


def build_control(task: str, opts: Options) -> Job:
    """``control``: ``--kind`` drawn from ``--video``, everywhere or inside the mask options given."""
    if not opts.video:
        raise InputError("control needs --video (the clip the control video is drawn from)")
    source_hw = probe_hw(opts.video)
    size = job_size(opts, source_hw)
    clip = read_clip(opts.video, opts, size, source_hw)
    region, notes = None, []
    if any(getattr(opts, name) for name in MASK_OPTIONS):
        packed, notes = collect_mask(opts, clip, size)
        region = np.asarray(packed)  # the drawing and the model kinds read it whole
    if opts.kind == "layout":  # make_options saw to a region
        control = layout_frames(region)
        notes.append("control: layout, the object's outline in black on white; the whole frame GENERATE")
        region = None  # the layout replaces the whole video
    elif opts.kind in MODEL_KINDS:
        control, model_notes = _model_control(clip.frames, opts, region)
        notes += model_notes
        if region is not None:
            keep_source(control, clip.frames, region)
    else:
        control = DrawnVideo(clip.frames, opts.kind, region)
        notes.append(f"control: {opts.kind} drawn from the source")
    if region is not None:
        notes.append("masked control: the control inside the mask, the source KEEP outside")
    mask = region if region is not None else np.ones(control.shape[:3], bool)
    refs, ref_notes = read_refs(opts.ref, size)
    return Job(
        task=task,
        video=control,
        mask=mask,
        fps=clip.fps,
        refs=refs,
        original=clip.frames,
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        notes=clip.notes + notes + ref_notes,
    )
