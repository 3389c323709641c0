"""``control``: a control video in place of the source (VACE's V2V), whole or inside a mask (MV2V).

The control video is drawn from ``--video`` at job size, the way VACE's annotators draw it:

- ``gray``: the luminance (ITU-R BT.601, OpenCV's ``RGB2GRAY``) as three equal channels: colourisation;
- ``edges``: OpenCV's Canny edges (thresholds 100 and 200, as VACE's canny annotator) as white lines on
  black: the structure, without texture or colour;
- ``scribble``: a simplified, thicker line drawing (Gaussian blur, Canny at 50 / 150, lines dilated to
  3 px): the rough shapes only. VACE's own scribble annotator is a learned model; this is its model-free
  stand-in.

Without a mask option every pixel is GENERATE and the model follows the control. With ``--mask``,
``--bbox``, ``--polygon`` or a tracked object, only that region is GENERATE and carries the control; the
source stays KEEP elsewhere (masked control).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..job import Job
from .options import Options
from .source import job_size, probe_hw, read_clip, read_refs
from .spatial import collect_mask

KINDS = ("gray", "edges", "scribble")
MASK_OPTIONS = ("mask", "bbox", "polygon", "track_box", "track_points", "segment")


def control_frames(frames: np.ndarray, kind: str) -> np.ndarray:
    """The control video of ``kind`` for uint8 RGB [F, H, W, 3] frames, uint8 [F, H, W, 3]."""
    import cv2

    if kind not in KINDS:
        raise InputError(f"choose from {', '.join(KINDS)}", field="kind", value=kind)
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


def build_control(task: str, opts: Options) -> Job:
    """``control``: ``--kind`` drawn from ``--video``, everywhere or inside the mask options given."""
    if not opts.video:
        raise InputError("control needs --video (the clip the control video is drawn from)")
    if opts.kind is None:
        raise InputError(f"required: {', '.join(KINDS)}", field="kind")
    source_hw = probe_hw(opts.video)
    size = job_size(opts, source_hw)
    clip = read_clip(opts.video, opts, size, source_hw)
    control = control_frames(clip.frames, opts.kind)
    notes = [f"control: {opts.kind} drawn from the source"]
    if any(getattr(opts, name) for name in MASK_OPTIONS):
        mask, mask_notes = collect_mask(opts, clip, size)
        notes += mask_notes + ["masked control: the control inside the mask, the source KEEP outside"]
        video = np.where(mask[..., None], control, clip.frames)
    else:
        mask = np.ones(control.shape[:3], bool)
        video = control
    refs, ref_notes = read_refs(opts.ref, size)
    return Job(
        task=task,
        video=video,
        mask=mask,
        fps=clip.fps,
        refs=refs,
        original=clip.frames,
        prompt=opts.prompt,
        negative_prompt=opts.negative_prompt,
        notes=clip.notes + notes + ref_notes,
    )
